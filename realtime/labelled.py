"""What a labelled photo holds: the emotion folders of a set of photos, and the face a photo is about."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from fercore.atomic import printable
from fercore.boxes import clip_box
from fercore.classes import EMOTIONS, UnknownEmotionError, class_index
from realtime.errors import InputError
from realtime.photos import list_folder

# The subject of a labelled photo: the largest face among those scoring at least this share of the best score.
SUBJECT_SCORE_SHARE = 0.8
Face = TypeVar("Face")  # a FaceResult or a Detection: anything with box and score


def labelled_photos(root: Path) -> tuple[list[tuple[Path, str]], list[dict]]:
    """(photo, emotion) for every photo in the emotion folders of ``root``, and the other files found there."""
    if not root.is_dir():
        raise InputError(f"not a folder: {printable(root)}")
    items, ignored = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            emotion = EMOTIONS[class_index(folder.name)]
        except UnknownEmotionError as exc:
            raise InputError(f"{printable(root)}: {exc}") from exc
        photos, others = list_folder(folder)
        items += [(photo, emotion) for photo in photos]
        ignored += others
    if not items:
        raise InputError(f"no photos in {printable(root)}/<emotion>/ folders (e.g. {printable(root)}/happy/photo.jpg)")
    return items, ignored


def subject(faces: Sequence[Face], size: tuple[int, int] | None = None) -> Face:
    """The face a labelled photo is about: the largest among those the detector is nearly as sure of as its best
    (score >= SUBJECT_SCORE_SHARE x the best). Size alone would pick a large false box on a poster or a hand;
    score alone a small sharp face in the background over the subject. ``faces`` are the pipeline's results or
    the detector's detections (anything with ``box`` and ``score``); with the photo's ``size`` (width, height)
    a box reaching outside it counts only its part inside."""
    best = max(f.score for f in faces)

    def area(face: Face) -> int:
        x0, y0, x1, y1 = face.box if size is None else clip_box(face.box, *size)
        return (x1 - x0) * (y1 - y0)
    return max((f for f in faces if f.score >= SUBJECT_SCORE_SHARE * best), key=lambda f: (area(f), f.score))

"""FER-2013 images that FER+ (Barsoum et al. 2016) found are not faces, so a run can leave them out of training.

FER+ had ten annotators vote on every FER-2013 image, "not a face" (NF) among the choices, and gave no file
to the images they dropped as not faces: blank frames, "this image is no longer available" placeholders,
icons, text. An alignment csv (columns ``kaggle_path``, ``ferplus_image``, ``NF`` and the other votes, as
``../shared/data/fer2013/ferplus_alignment_train_val.csv``; see its SOURCE.md) ties each FER-2013 file to its
FER+ row. It names files, so this works with FER-2013 as folders: 149 of the dropped images have no csv row to
match in ``fer2013.csv``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from training.data import folder_split_files
from training.errors import DataError

VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")


def not_face_paths(alignment: str | Path) -> set[str]:
    """The files (paths under the data folder, ``train/sad/Training_123.jpg``) that FER+ gave no image, or whose
    votes are at least half "not a face"."""
    path = Path(alignment).expanduser()
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"kaggle_path", "ferplus_image", *VOTES} - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path}: not a FER+ alignment csv (no column {', '.join(sorted(missing))})")
            out = set()
            for row in reader:
                try:
                    votes = {k: int(row[k]) for k in VOTES if row[k]}
                except ValueError:
                    raise DataError(f"{path}, line {reader.line_num}: votes must be whole numbers") from None
                if not row["ferplus_image"] or (votes and 2 * votes.get("NF", 0) >= sum(votes.values())):
                    out.add(Path(row["kaggle_path"]).as_posix())
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a FER+ alignment csv (not UTF-8 text)") from None
    except OSError as exc:
        raise DataError(f"data.exclude_not_faces: cannot read {path} ({exc.strerror or exc})") from None
    return out


def face_mask(root: str | Path, split: str, alignment: str | Path) -> np.ndarray:
    """True for each image of ``split`` (in read_split's order) that is not among ``not_face_paths``. Refused for
    a csv data source, and when the alignment names none of the split's files (another copy's file names)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.exclude_not_faces needs FER-2013 as folders, not {root}: the FER+ alignment names "
                        "files, and the images FER+ dropped have no row to match in a csv")
    files, _ = folder_split_files(root, split)
    names = [f.relative_to(root).as_posix() for f in files]
    drop = not_face_paths(alignment)
    known = {n.split("/", 1)[0] for n in drop}
    mask = np.array([n not in drop for n in names])
    if drop and not (~mask).any():
        raise DataError(f"{alignment} names none of the {len(names)} files in {root / split} (it names files "
                        f"under {', '.join(sorted(known))}/ such as {min(drop)}): is it the alignment of this copy?")
    return mask

"""Results as plain data, and the JSON / JSON Lines / CSV files and summaries every entry point writes.

The JSON layout is documented in the README ("Results files"); SCHEMA and VERSION name it.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fercore.atomic import atomic_path
from fercore.boxes import Box
from fercore.cli import count_of

SCHEMA = "fer-emotion-results"
# 2: a face the model cannot read has label null and a reason. 3: a frame says whether it starts a new shot
# (cut), a face whether its label is held from earlier frames (held) and what its view weighed (weight); new
# fields only, so a reader of version 2 reads version 3 files by ignoring them.
VERSION = 3


@dataclass
class FaceResult:
    track: int  # the same number for the same face across frames; restarts at 1 for each photo
    box: Box  # detector box clipped to the frame, pixels (x0, y0, x1, y1)
    score: float  # detector confidence
    label: str | None  # the most probable class of the track's evidence; None when the face cannot be read
    confidence: float  # the most probable class's (calibrated) probability
    probabilities: dict[str, float]  # every class, the track's evidence (realtime.tracking)
    reason: str | None = None  # why the face cannot be read (fercore.readability.REASONS); None when labelled
    held: bool = False  # labelled from the track's earlier frames: this view alone cannot be read
    weight: float = 1.0  # what this frame's reading counts in the track's evidence (realtime.pipeline)

    @property
    def uncertain(self) -> bool:
        return self.label is None

    def to_dict(self) -> dict:
        return {"track": self.track, "box": list(self.box), "score": round(self.score, 4), "label": self.label,
                "reason": self.reason, "held": self.held, "weight": round(self.weight, 4),
                "confidence": round(self.confidence, 4),
                "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}}


@dataclass
class FrameResult:
    frame: int  # index of the frame in its video or stream, or of the photo in its folder
    time: float | None  # seconds from the start of the video or stream; None for photos
    faces: list[FaceResult] = field(default_factory=list)
    source: str | None = None  # the photo's path; None for video frames
    cut: bool = False  # the frame starts a new shot (realtime.scenecut): no track continues across it

    def to_dict(self) -> dict:
        return {"frame": self.frame, "time": None if self.time is None else round(self.time, 4),
                "source": self.source, "cut": self.cut, "faces": [f.to_dict() for f in self.faces]}


def _shares(labels: list[str | None], classes: list[str], weights: list[float] | None = None) -> dict[str, float]:
    """Share of each class among the labelled faces (uncertain ones are counted apart), each face counting its
    ``weight`` (default 1)."""
    counts: Counter = Counter()
    for label, weight in zip(labels, weights or [1.0] * len(labels)):
        if label is not None:
            counts[label] += weight
    total = sum(counts.values())
    return {c: round(counts[c] / total, 4) if total else 0.0 for c in classes}


def _uncertain(labels: list[str | None]) -> float:
    return round(sum(label is None for label in labels) / len(labels), 4) if labels else 0.0


def summarize(frames: list[FrameResult], classes: list[str], per_track: bool = True) -> dict:
    """Share of each emotion over the labelled faces and, for videos, per track; the share of uncertain faces
    apart. A track's shares weigh its labelled frames as its evidence does (``FaceResult.weight``: a frame held
    through a bad view counts little), so they say what the track's good views showed."""
    faces = [f for fr in frames for f in fr.faces]
    labels = [f.label for f in faces]
    summary: dict = {"frames": len(frames), "frames_with_faces": sum(1 for fr in frames if fr.faces),
                     "faces": len(labels), "uncertain": _uncertain(labels), "emotions": _shares(labels, classes),
                     **_counts(faces)}
    if per_track:
        by_track: dict[int, list[tuple[int, FaceResult]]] = {}
        for fr in frames:
            for f in fr.faces:
                by_track.setdefault(f.track, []).append((fr.frame, f))
        summary["tracks"] = {}
        for track, seen in sorted(by_track.items()):
            track_labels = [f.label for _, f in seen]
            shares = _shares(track_labels, classes, [f.weight for _, f in seen])
            dominant = max(shares, key=shares.get) if any(shares.values()) else None
            summary["tracks"][str(track)] = {"frames": len(seen), "first_frame": seen[0][0],
                                             "last_frame": seen[-1][0], "dominant": dominant,
                                             "uncertain": _uncertain(track_labels), "emotions": shares,
                                             **_counts([f for _, f in seen])}
    return summary


def _counts(faces: list[FaceResult]) -> dict:
    """How many faces were labelled, with each emotion, and how many were uncertain, for each reason."""
    labelled = Counter(f.label for f in faces if f.label is not None)
    reasons = Counter(f.reason or "uncertain" for f in faces if f.label is None)
    return {"labelled": sum(labelled.values()), "label_counts": dict(labelled.most_common()),
            "uncertain_counts": dict(reasons.most_common())}


def _counted(n: int, what: str, counts: dict[str, int]) -> str:
    return f"{n} {what}" + (f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else "")


def describe_faces(counts: dict, faces: int, nouns: str = "faces") -> str:
    """Counts before shares: '11 faces: 6 labelled (happy 6), 5 uncertain (unsure 3, turned away 2)'."""
    uncertain = faces - counts["labelled"]
    parts = [_counted(counts["labelled"], "labelled", counts["label_counts"])]
    if uncertain:
        parts.append(_counted(uncertain, "uncertain", counts["uncertain_counts"]))
    return f"{count_of(faces, nouns)}: " + ", ".join(parts) if faces else f"no {nouns}"


def format_summary(summary: dict, unit: str = "frames") -> str:
    """The summary as a few lines for the terminal; ``unit`` names what was counted (frames or photos)."""
    lines = [f"{count_of(summary['frames'], unit)}, {summary['frames_with_faces']} with faces; "
             + describe_faces(summary, summary["faces"])]
    for track, t in summary.get("tracks", {}).items():
        lines.append(f"  track {track}: frames {t['first_frame']}-{t['last_frame']}, "
                     + describe_faces(t, t["frames"], "views"))
    return "\n".join(lines)


def header(classes: list[str], **meta) -> dict:
    """The fields that open every results file: schema, version, classes and what the caller adds."""
    return {"schema": SCHEMA, "version": VERSION, "classes": list(classes), **meta}


def write_json(path: str | Path, head: dict, frames: list[FrameResult], summary: dict) -> None:
    """One JSON document: ``head`` fields, every frame, the summary. Written atomically."""
    doc = {**head, "frames": [fr.to_dict() for fr in frames], "summary": summary}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")


def csv_columns(classes: list[str]) -> list[str]:
    """The columns of version 2 files, then those version 3 added (so that a reader by position still works)."""
    return ["source", "frame", "time", "track", "x0", "y0", "x1", "y1", "score", "label", "reason", "confidence",
            *(f"p_{c}" for c in classes), "cut", "held", "weight"]


def write_csv(path: str | Path, frames: list[FrameResult], classes: list[str]) -> None:
    """One row per face (frames without faces have no row). Written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(csv_columns(classes))
        for fr in frames:
            for f in fr.faces:
                d = f.to_dict()
                writer.writerow([fr.source or "", fr.frame, "" if fr.time is None else round(fr.time, 4), f.track,
                                 *f.box, d["score"], f.label or "", f.reason or "", d["confidence"],
                                 *(d["probabilities"][c] for c in classes), int(fr.cut), int(f.held), d["weight"]])


class JsonlLog:
    """A live log: the header on the first line, then one frame per line, flushed so ``tail -f`` follows it."""

    def __init__(self, path: str | Path, head: dict) -> None:
        self._fh: IO[str] = open(path, "w", buffering=1)
        self._fh.write(json.dumps(head) + "\n")

    def write(self, frame: FrameResult) -> None:
        self._fh.write(json.dumps(frame.to_dict()) + "\n")

    def close(self) -> None:
        self._fh.close()

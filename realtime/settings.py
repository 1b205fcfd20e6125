"""The pipeline's settings, owned by the library: one frozen ``Settings`` with the defaults per kind of source.

Every entry point builds its pipeline here: the API (``EmotionRecognizer``) from keyword overrides, the commands
from their options (realtime.commands.options builds the options from these fields and their defaults). So a
photo, a video file and a camera get the same faces whichever way they are read.

Kinds of source and why their defaults differ (docs/detection.md has the measurements):
- ``photo``: one still image, MediaPipe IMAGE mode, no tracking; the full-range detector, which finds small,
  distant and turned faces (group photos), falling back to a padded frame for close-ups that fill the image.
- ``file``: a video file, every frame in order; the full-range detector as for photos, tracks across frames.
- ``camera``: a live camera or stream URL; the short-range detector, 4x faster, for faces within about 2 m.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from fercore.readability import RANGES, ReadabilityLimits
from models.onnx_runtime import PRECISIONS
from realtime.classifier import BACKENDS, EmotionClassifier, checkpoint_paths, load_classifier
from realtime.detector import FaceDetector
from realtime.pipeline import Pipeline
from realtime.tracking import Tracker

SourceKind = Literal["photo", "file", "camera"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("photo", "file", "camera")
DETECTOR_FOR: dict[SourceKind, str] = {"photo": "full", "file": "full", "camera": "short"}
MAX_THREADS = os.cpu_count() or 1

# Each readability override and the limit it sets (fercore.readability.ReadabilityLimits).
LIMIT_FIELDS = {"max_yaw": "max_yaw", "max_roll": "max_roll", "min_face": "min_size",
                "min_sharpness": "min_sharpness", "min_label_confidence": "min_confidence"}


@dataclass(frozen=True)
class Settings:
    """What a pipeline is built from. ``None`` means "decided elsewhere": the checkpoint's own margin and
    readability limits, the detector of the source kind and that detector's measured threshold.

    ``checkpoint``: a shipped model's name (``default``, ``fast``, ``accurate``), a .pt or .onnx path, or several
    .pt paths run as one ensemble; None is ``default``. ``precision``: "int8" or "fp32" (None: int8 on the ONNX
    backend, a quantized export; fp32 on PyTorch). ``smoothing`` (video only): how long a track's evidence
    lasts, in [0, 1): the share of its past a sharp, frontal, confident frame keeps (realtime.tracking).
    ``label_all`` labels every face however hard to read; ``align`` turns faces tilted past 15 degrees upright by
    their eye line before reading them (off by default: on the hand-labelled real faces it never helped and
    misread three-quarter views, docs/choosing_models.md). The five limit fields override the model's stored
    readability limits.
    """
    checkpoint: str | tuple[str, ...] | None = None
    detector: str | None = None
    min_confidence: float | None = None
    margin: float | None = None
    backend: str = "onnx"
    precision: str | None = None
    threads: int = 2
    smoothing: float = 0.6
    label_all: bool = False
    align: bool = False
    max_yaw: float | None = None
    max_roll: float | None = None
    min_face: float | None = None
    min_sharpness: float | None = None
    min_label_confidence: float | None = None

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def for_source(self, kind: SourceKind) -> "Settings":
        """These settings with what the kind of source decides filled in: its detector, and no smoothing for a
        photo (it has no past frames)."""
        if kind not in SOURCE_KINDS:
            raise ValueError(f"source kind must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
        return dataclasses.replace(self, detector=self.detector or DETECTOR_FOR[kind],
                                   smoothing=0.0 if kind == "photo" else self.smoothing)

    def limits(self, model: ReadabilityLimits) -> ReadabilityLimits | None:
        """The readability limits to apply: the ``model``'s, each overridden where set; None with label_all."""
        if self.label_all:
            return None
        given = {limit: getattr(self, name) for name, limit in LIMIT_FIELDS.items() if getattr(self, name) is not None}
        return dataclasses.replace(model, **given)

    def replace(self, **overrides: Any) -> "Settings":
        """A copy with ``overrides`` (None values are left out: "not given"); unknown names are a TypeError."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        def text(path: Any) -> Any:  # a path as text; anything else is left for __post_init__ to name in words
            return os.fspath(path) if isinstance(path, (str, os.PathLike)) else path

        if isinstance(given.get("checkpoint"), (list, tuple)):  # one model given as a list is that model
            paths = tuple(text(p) for p in given["checkpoint"])
            given["checkpoint"] = paths[0] if len(paths) == 1 else paths
        elif given.get("checkpoint") is not None:
            given["checkpoint"] = text(given["checkpoint"])
        return dataclasses.replace(self, **given)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problems(s: Settings) -> list[str]:
    """Every setting out of its range, in words (the commands check the same ranges when parsing)."""
    problems = []

    def check(name: str, lo: float, hi: float, hi_open: bool = False, optional: bool = True) -> None:
        value = getattr(s, name)
        if value is None and optional:
            return
        inside = _is_number(value) and lo <= value and (value < hi if hi_open else value <= hi)
        if not inside:
            problems.append(f"{name} must be a number in [{lo:g}, {hi:g}{')' if hi_open else ']'}, got {value!r}")

    check("min_confidence", 0, 1)
    check("margin", 0, 2)
    check("smoothing", 0, 1, hi_open=True, optional=False)
    for name, limit in LIMIT_FIELDS.items():
        check(name, *RANGES[limit])
    if s.backend not in BACKENDS:
        problems.append(f"backend must be one of {', '.join(BACKENDS)}, got {s.backend!r}")
    if s.precision is not None and s.precision not in PRECISIONS:
        problems.append(f"precision must be one of {', '.join(PRECISIONS)} or None, got {s.precision!r}")
    elif s.backend == "torch" and s.precision == "int8":
        problems.append("precision int8 runs on the onnx backend only; the torch backend runs fp32")
    if not (isinstance(s.threads, int) and not isinstance(s.threads, bool) and 1 <= s.threads <= MAX_THREADS):
        problems.append(f"threads must be a whole number from 1 to {MAX_THREADS} (this machine's cores), "
                        f"got {s.threads!r}")
    for name in ("label_all", "align"):
        if not isinstance(getattr(s, name), bool):
            problems.append(f"{name} must be True or False, got {getattr(s, name)!r}")
    if s.detector is not None and not isinstance(s.detector, str):
        problems.append(f"detector must be a name or a .tflite path, got {s.detector!r}")
    if s.checkpoint is not None and not (isinstance(s.checkpoint, str) or
                                         (isinstance(s.checkpoint, tuple) and s.checkpoint
                                          and all(isinstance(p, str) for p in s.checkpoint))):
        problems.append(f"checkpoint must be a model name, a path or a list of paths, got {s.checkpoint!r}")
    return problems


def checkpoints(settings: Settings) -> str | Sequence[str] | None:
    """The checkpoint setting as load_classifier takes it."""
    return list(settings.checkpoint) if isinstance(settings.checkpoint, tuple) else settings.checkpoint


def build_pipeline(settings: Settings, kind: SourceKind, classifier: EmotionClassifier | None = None) -> Pipeline:
    """The pipeline ``settings`` describe for a kind of source: MediaPipe VIDEO mode for files and cameras, IMAGE
    mode for photos. ``classifier``: one already loaded from these settings, to share between pipelines."""
    s = settings.for_source(kind)
    if classifier is None:
        classifier = load_classifier(checkpoints(s), threads=s.threads, backend=s.backend, precision=s.precision)
    detector = FaceDetector(s.detector, video=kind != "photo", min_confidence=s.min_confidence)
    try:
        return Pipeline(detector, classifier, Tracker(smoothing=s.smoothing), margin=s.margin,
                        limits=s.limits(classifier.limits), align=s.align)
    except BaseException:
        detector.close()
        raise


def record(settings: Settings, kind: SourceKind, pipe: Pipeline) -> dict:
    """The settings of a run as its results file records them: every value as it was applied."""
    s = settings.for_source(kind)
    return {"checkpoint": checkpoint_record(s.checkpoint), "backend": s.backend,
            "precision": pipe.classifier.precision, "detector": s.detector,
            "min_confidence": pipe.detector.min_confidence, "margin": pipe.margin,
            "readability": None if pipe.limits is None else pipe.limits.to_dict(), "align": pipe.align,
            "smoothing": s.smoothing}


def checkpoint_record(checkpoint: str | tuple[str, ...] | None) -> str | list[str]:
    """The checkpoint setting as results files record it: the path of one model, the list of an ensemble's."""
    paths = [str(path) for path in checkpoint_paths(checkpoint)]
    return paths[0] if len(paths) == 1 else paths

"""What the realtime entry points share: pipeline options and their user-error types. The convention itself
(range-checked numbers, exit statuses) is fercore.cli, shared with training."""
from __future__ import annotations

import argparse
from typing import Callable

from fercore import cli as shared
from fercore.cli import number
from fercore.paths import DEFAULT_CHECKPOINT, DETECTOR_MODELS
from models.errors import CheckpointError
from realtime.classifier import BACKENDS, load_classifier
from realtime.detector import DetectorError, FaceDetector
from realtime.photos import ImageError
from realtime.pipeline import Pipeline
from realtime.tracking import Tracker
from realtime.video_io import CaptureError, VideoError


class InputError(ValueError):
    """A bad input path or argument the user can fix (message says how)."""


USER_ERRORS = (CheckpointError, DetectorError, VideoError, CaptureError, ImageError, InputError)


def add_pipeline_args(parser: argparse.ArgumentParser, smoothing: bool = True) -> None:
    g = parser.add_argument_group("pipeline")
    g.add_argument("--checkpoint", default=None,
                   help="emotion model: a checkpoint (.pt) or an export of one (.onnx); default weights/default.pt")
    g.add_argument("--detector", default="short",
                   help=f"face detector: {' or '.join(DETECTOR_MODELS)} (full: small or distant faces) "
                        "or a .tflite path (default: short)")
    g.add_argument("--min-confidence", type=number(0, 1), default=0.5,
                   help="minimum face detection score (default 0.5)")
    g.add_argument("--margin", type=number(0), default=None,
                   help="widen each face box by this fraction of its size per side before cropping (default: the "
                        "margin the model was trained for, stored in its checkpoint; 0.15 for the shipped model)")
    g.add_argument("--backend", choices=BACKENDS, default="onnx",
                   help="inference backend for the emotion model (default onnx: ONNX Runtime, faster on CPUs)")
    g.add_argument("--threads", type=number(1, kind=int), default=2,
                   help="CPU threads for the emotion model (default 2; they sleep between frames, so an idle "
                        "thread costs no CPU; use 1 when other work keeps the cores busy)")
    if smoothing:
        g.add_argument("--smoothing", type=number(0, 1, hi_open=True), default=0.6,
                       help="per-track probability smoothing in [0, 1): weight kept from past frames; 0 = off "
                            "(default 0.6)")


def pipeline_from_args(args: argparse.Namespace, video: bool) -> Pipeline:
    """The pipeline the options describe: VIDEO-mode detection for streams, IMAGE mode for photos."""
    classifier = load_classifier(args.checkpoint, threads=args.threads, backend=args.backend)
    detector = FaceDetector(args.detector, video=video, min_confidence=args.min_confidence)
    return Pipeline(detector, classifier, Tracker(smoothing=getattr(args, "smoothing", 0.0)), margin=args.margin)


def settings(args: argparse.Namespace, pipe: Pipeline) -> dict:
    """The pipeline options of a run, recorded in its results file."""
    return {"checkpoint": str(args.checkpoint or DEFAULT_CHECKPOINT), "backend": args.backend,
            "detector": str(args.detector),
            "min_confidence": args.min_confidence, "margin": pipe.margin,
            "smoothing": getattr(args, "smoothing", 0.0)}


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run an entry point with the shared convention (fercore.cli.run): a known failure becomes one 'error:'
    line on stderr and exit status 1, Ctrl-C 130."""
    return shared.run(main, argv, USER_ERRORS)

"""What the realtime entry points share: pipeline options and their user-error types. The convention itself
(range-checked numbers, exit statuses) is fercore.cli, shared with training."""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Callable

from fercore import cli as shared
from fercore.cli import number
from fercore.paths import DEFAULT_CHECKPOINT, one_or_more
from fercore.readability import RANGES, ReadabilityLimits
from models.errors import CheckpointError
from realtime.classifier import BACKENDS, load_classifier
from realtime.detector import DETECTORS, DetectorError, FaceDetector
from realtime.photos import ImageError
from realtime.pipeline import Pipeline
from realtime.tracking import Tracker
from realtime.video_io import CaptureError, VideoError


class InputError(ValueError):
    """A bad input path or argument the user can fix (message says how)."""


USER_ERRORS = (CheckpointError, DetectorError, VideoError, CaptureError, ImageError, InputError)


# The face detector per command, chosen with `python -m realtime.detector_eval` (README, "Face detection: which
# detector, measured"): a live camera keeps the 4x faster short-range model (arm's length faces, the FPS targets);
# photos and video files get the full-range model, which found every readable face there with no false positive.
LIVE_COMMANDS = ("python -m realtime.webcam", "python -m realtime.benchmark")
LIVE_DETECTOR, FILE_DETECTOR = "short", "full"


def add_pipeline_args(parser: argparse.ArgumentParser, smoothing: bool = True) -> None:
    g = parser.add_argument_group("pipeline")
    g.add_argument("--checkpoint", nargs="+", default=None, metavar="PATH",
                   help="emotion model: a checkpoint (.pt) or an export of one (.onnx); several .pt checkpoints run "
                        "as one ensemble, their probabilities averaged; default weights/default.pt")
    detector = LIVE_DETECTOR if parser.prog in LIVE_COMMANDS else FILE_DETECTOR
    g.add_argument("--detector", default=detector,
                   help=f"face detector: {', '.join(DETECTORS)} or a .tflite path (default here: {detector}; "
                        f"{LIVE_DETECTOR} is the fast one for a live camera, {FILE_DETECTOR} finds small, distant and "
                        "turned faces in photos and films)")
    g.add_argument("--min-confidence", type=number(0, 1), default=None,
                   help="minimum face detection score (default: the detector's own, measured on labelled faces: "
                        + ", ".join(f"{n} {d.min_confidence:g}" for n, d in DETECTORS.items() if "+" not in n) + ")")
    g.add_argument("--margin", type=number(0, 2), default=None,
                   help="widen each face box by this fraction of its size per side before cropping, 0 to 2 "
                        "(default: the margin the model was trained for, stored in its checkpoint; 0.15 for the "
                        "shipped model)")
    g.add_argument("--backend", choices=BACKENDS, default="onnx",
                   help="inference backend for the emotion model (default onnx: ONNX Runtime, faster on CPUs)")
    g.add_argument("--threads", type=number(1, os.cpu_count() or 1, kind=int), default=2,
                   help="CPU threads for the emotion model, at most the CPU's cores (default 2; they sleep between "
                        "frames, so an idle thread costs no CPU; use 1 when other work keeps the cores busy)")
    if smoothing:
        g.add_argument("--smoothing", type=number(0, 1, hi_open=True), default=0.6,
                       help="per-track probability smoothing in [0, 1): weight kept from past frames; 0 = off "
                            "(default 0.6)")
    add_readability_args(parser)


# Each readability option and the limit it sets (fercore.readability.ReadabilityLimits).
LIMIT_OPTIONS = {"max_yaw": "max_yaw", "max_roll": "max_roll", "min_face": "min_size",
                 "min_sharpness": "min_sharpness", "min_label_confidence": "min_confidence"}


def add_readability_args(parser: argparse.ArgumentParser) -> None:
    """Limits past which a face is reported as uncertain (no label, a reason) instead of labelled. Each one left
    out is the model's own (measured for it and stored with it)."""
    d = ReadabilityLimits()
    g = parser.add_argument_group("uncertain faces (default: the limits measured for the model and stored with it; "
                                  "README, \"Uncertain faces\")")

    def option(name: str, what: str) -> None:
        limit = LIMIT_OPTIONS[name]
        g.add_argument("--" + name.replace("_", "-"), type=number(*RANGES[limit]), default=None,
                       help=f"{what} (default: the model's; {getattr(d, limit):g} for weights/default.pt)")

    option("max_yaw", "degrees a head may be turned away and still be labelled")
    option("max_roll", "degrees a head may be tilted and still be labelled")
    option("min_face", "smallest face (pixels, the shorter side of its box) that is labelled")
    option("min_sharpness", "least sharpness (Laplacian variance of the model's crop) that is labelled")
    option("min_label_confidence", "least calibrated probability of the top emotion that is labelled")
    g.add_argument("--label-all", action="store_true", help="label every face, however hard to read")
    g.add_argument("--no-align", action="store_true",
                   help="do not turn tilted faces upright before reading them (then a tilt past --max-roll is "
                        "uncertain)")


def limits_from_args(args: argparse.Namespace, model: ReadabilityLimits) -> ReadabilityLimits | None:
    """The limits to apply: the ``model``'s, each overridden by its option where given; None with --label-all."""
    if getattr(args, "label_all", False) or not hasattr(args, "max_yaw"):
        return None
    given = {limit: getattr(args, option) for option, limit in LIMIT_OPTIONS.items()
             if getattr(args, option) is not None}
    return dataclasses.replace(model, **given)


def pipeline_from_args(args: argparse.Namespace, video: bool) -> Pipeline:
    """The pipeline the options describe: VIDEO-mode detection for streams, IMAGE mode for photos."""
    classifier = load_classifier(args.checkpoint, threads=args.threads, backend=args.backend)
    detector = FaceDetector(args.detector, video=video, min_confidence=args.min_confidence)
    args.min_confidence = detector.min_confidence  # the detector's own when not given: results files record it
    return Pipeline(detector, classifier, Tracker(smoothing=getattr(args, "smoothing", 0.0)), margin=args.margin,
                    limits=limits_from_args(args, classifier.limits), align=not getattr(args, "no_align", False))


def checkpoint_setting(checkpoint: str | list[str] | None) -> str | list[str]:
    """``--checkpoint`` as results files record it: the path of one model, the list of an ensemble's."""
    if checkpoint is None:
        return str(DEFAULT_CHECKPOINT)
    paths = [str(path) for path in one_or_more(checkpoint)]
    return paths[0] if len(paths) == 1 else paths


def settings(args: argparse.Namespace, pipe: Pipeline) -> dict:
    """The pipeline options of a run, recorded in its results file."""
    return {"checkpoint": checkpoint_setting(args.checkpoint), "backend": args.backend,
            "detector": str(args.detector),
            "min_confidence": args.min_confidence, "margin": pipe.margin,
            "readability": None if pipe.limits is None else pipe.limits.to_dict(), "align": pipe.align,
            "smoothing": getattr(args, "smoothing", 0.0)}


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run an entry point with the shared convention (fercore.cli.run): a known failure becomes one 'error:'
    line on stderr and exit status 1, Ctrl-C 130."""
    return shared.run(main, argv, USER_ERRORS)

"""What the realtime entry points share: pipeline options and their user-error types. The convention itself
(range-checked numbers, exit statuses) is fercore.cli, shared with training."""
from __future__ import annotations

import argparse
import os
from typing import Callable

from fercore import cli as shared
from fercore.cli import number
from fercore.paths import DEFAULT_CHECKPOINT, one_or_more
from fercore.readability import ReadabilityLimits
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


def add_readability_args(parser: argparse.ArgumentParser) -> None:
    """Limits past which a face is reported as uncertain (no label, a reason) instead of labelled."""
    d = ReadabilityLimits()
    g = parser.add_argument_group("uncertain faces (defaults measured on FER-2013 val; README, \"Uncertain faces\")")
    g.add_argument("--max-yaw", type=number(0, 90), default=d.max_yaw,
                   help=f"degrees a head may be turned away and still be labelled (default {d.max_yaw:g})")
    g.add_argument("--max-roll", type=number(0, 180), default=d.max_roll,
                   help=f"degrees a head may be tilted and still be labelled (default {d.max_roll:g})")
    g.add_argument("--min-face", type=number(0, 10000), default=d.min_size,
                   help=f"smallest face (pixels, the shorter side of its box) that is labelled "
                        f"(default {d.min_size:g})")
    g.add_argument("--min-sharpness", type=number(0, 1e6), default=d.min_sharpness,
                   help=f"least sharpness (Laplacian variance of the model's crop) that is labelled "
                        f"(default {d.min_sharpness:g})")
    g.add_argument("--min-label-confidence", type=number(0, 1), default=d.min_confidence,
                   help=f"least calibrated probability of the top emotion that is labelled "
                        f"(default {d.min_confidence:g})")
    g.add_argument("--label-all", action="store_true", help="label every face, however hard to read")
    g.add_argument("--no-align", action="store_true",
                   help="do not turn tilted faces upright before reading them (then a tilt past --max-roll is "
                        "uncertain)")


def limits_from_args(args: argparse.Namespace) -> ReadabilityLimits | None:
    if getattr(args, "label_all", False) or not hasattr(args, "max_yaw"):
        return None
    return ReadabilityLimits(args.max_yaw, args.max_roll, args.min_face, args.min_sharpness,
                             args.min_label_confidence)


def pipeline_from_args(args: argparse.Namespace, video: bool) -> Pipeline:
    """The pipeline the options describe: VIDEO-mode detection for streams, IMAGE mode for photos."""
    classifier = load_classifier(args.checkpoint, threads=args.threads, backend=args.backend)
    detector = FaceDetector(args.detector, video=video, min_confidence=args.min_confidence)
    args.min_confidence = detector.min_confidence  # the detector's own when not given: results files record it
    return Pipeline(detector, classifier, Tracker(smoothing=getattr(args, "smoothing", 0.0)), margin=args.margin,
                    limits=limits_from_args(args), align=not getattr(args, "no_align", False))


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

"""The pipeline options every realtime command shares, built from the library's settings
(realtime.settings.Settings): each option's default is its field's, so a command and the API start from the same
values, and ``settings_from_args`` turns the parsed options back into a ``Settings``."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Callable

from fercore import cli as shared
from fercore.cli import number
from fercore.readability import RANGES, ReadabilityLimits
from models.onnx_runtime import PRECISIONS
from realtime.detector import DETECTORS
from realtime.errors import USER_ERRORS, InputError
from realtime.settings import BACKENDS, DETECTOR_FOR, LIMIT_FIELDS, MAX_THREADS, Settings

DEFAULTS = Settings()


def add_pipeline_args(parser: argparse.ArgumentParser, smoothing: bool = True) -> None:
    """The options of ``Settings`` (``smoothing`` False: a command that reads photos only)."""
    g = parser.add_argument_group("pipeline")
    g.add_argument("--checkpoint", nargs="+", default=None, metavar="MODEL",
                   help="emotion model: a shipped model's name (default, fast, accurate; --list-models shows them), "
                        "a checkpoint (.pt) or an export of one (.onnx); several .pt checkpoints run as one "
                        "ensemble, their probabilities averaged (default: default)")
    g.add_argument("--detector", default=None,
                   help=f"face detector: {', '.join(DETECTORS)} or a .tflite path (default: "
                        f"{DETECTOR_FOR['photo']} for photos and video files, {DETECTOR_FOR['camera']} for a camera "
                        "or stream: the fast one for faces within about 2 m)")
    g.add_argument("--min-confidence", type=number(0, 1), default=None,
                   help="minimum face detection score (default: the detector's own, measured on labelled faces: "
                        + ", ".join(f"{n} {d.min_confidence:g}" for n, d in DETECTORS.items()) + ")")
    g.add_argument("--margin", type=number(0, 2), default=None,
                   help="widen each face box by this fraction of its size per side before cropping, 0 to 2 "
                        "(default: the margin the model was trained for, stored in its checkpoint; 0.15 for the "
                        "shipped models)")
    g.add_argument("--backend", choices=BACKENDS, default=DEFAULTS.backend,
                   help=f"inference backend for the emotion model (default {DEFAULTS.backend}: ONNX Runtime, faster "
                        "on CPUs)")
    g.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="the emotion model's arithmetic: int8 (a quantized export, as accurate, smaller) or fp32 "
                        "(default: int8 on the onnx backend, fp32 on torch)")
    g.add_argument("--threads", type=number(1, MAX_THREADS, kind=int), default=DEFAULTS.threads,
                   help=f"CPU threads for the emotion model, at most the CPU's cores (default {DEFAULTS.threads}; "
                        "they sleep between frames, so an idle thread costs no CPU; use 1 when other work keeps the "
                        "cores busy)")
    if smoothing:
        g.add_argument("--smoothing", type=number(0, 1, hi_open=True), default=DEFAULTS.smoothing,
                       help="how long a track's evidence lasts, in [0, 1): the share of its past a sharp, frontal, "
                            "confident frame keeps; 0 = each frame judged alone, no held labels "
                            f"(default {DEFAULTS.smoothing:g})")
    add_readability_args(parser)
    parser.add_argument("--list-models", action=ListModels, help="list the shipped models and exit")


def add_readability_args(parser: argparse.ArgumentParser) -> None:
    """Limits past which a face is reported as uncertain (no label, a reason) instead of labelled. Each one left
    out is the model's own (measured for it and stored with it)."""
    d = ReadabilityLimits()
    g = parser.add_argument_group("uncertain faces (default: the limits measured for the model and stored with it; "
                                  "docs/readability.md)")

    def option(name: str, what: str) -> None:
        limit = LIMIT_FIELDS[name]
        g.add_argument("--" + name.replace("_", "-"), type=number(*RANGES[limit]), default=None,
                       help=f"{what} (default: the model's; {getattr(d, limit):g} for the default model)")

    option("max_yaw", "degrees a head may be turned away and still be labelled")
    option("max_roll", "degrees a head may be tilted and still be labelled")
    option("min_face", "smallest face (pixels, the shorter side of its box) that is labelled")
    option("min_sharpness", "least sharpness (Laplacian variance of the model's crop) that is labelled")
    option("min_label_confidence", "least calibrated probability of the top emotion that is labelled")
    g.add_argument("--label-all", action="store_true", help="label every face, however hard to read")
    g.add_argument("--align", action=argparse.BooleanOptionalAction, default=DEFAULTS.align,
                   help="turn faces tilted past 15 degrees upright by their eye line before reading them; without "
                        "it a tilt past --max-roll is uncertain")


class ListModels(argparse.Action):
    """``--list-models``: the shipped models (fercore.shipped) and exit, like --help."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from fercore.shipped import format_models

        print(format_models())
        parser.exit()


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` the parsed options describe (an option a command lacks keeps the field's default);
    InputError for options that cannot go together."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    given = {name: value for name, value in vars(args).items() if name in fields}
    try:
        return DEFAULTS.replace(**given)
    except ValueError as exc:  # values valid alone that cannot go together (--backend torch --precision int8)
        raise InputError(str(exc)) from None


def run(command: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a realtime command with the shared convention (fercore.cli.run): a known failure becomes one 'error:'
    line on stderr and exit status 1, Ctrl-C 130."""
    return shared.run(command, argv, USER_ERRORS)

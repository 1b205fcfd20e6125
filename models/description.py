"""What a model's description says, checked before anything is built from it: the architecture and its
arguments, the class names and the temperature (the preprocessing checks itself, models.preprocessing).

A checkpoint, its ONNX export and a training config all carry such a description, and none of them is
trusted: an unknown argument, a width that would allocate gigabytes, three class names on a seven-output
model are refused here with a message naming the value. Torch-free, so the app's ONNX Runtime path and
training's config check use it without loading torch. ``ARCH_ARGS`` mirrors the constructors in models.cnn
and models.resnet (tests/test_checkpoint.py checks that the two agree).
"""
from __future__ import annotations

import math
from typing import Any, Callable

from fercore.classes import EMOTIONS

MAX_CLASSES = 1000
MAX_PARAMETERS = 150_000_000  # 600 MB of float32 weights; the seed's full-width CNN has 7.2 M
# Model-building options that only choose initial weights (a download, a file): a config may set them
# (model.pretrained, model.weights_path), a checkpoint never, as its weights are in it.
INITIAL_WEIGHTS = ("pretrained", "weights_path")
PRETRAINED_ARCHS = ("resnet18",)  # the architectures that have such weights

Check = Callable[[str, Any], Any]


def number(kind: type, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False,
           multiple: int = 1) -> Check:
    """A check of a finite ``kind`` (int or float) in [lo, hi] (open ends as asked); an int passes as a float."""
    def check(name: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name} must be {'a whole number' if kind is int else 'a number'}, got {value!r}")
        value = kind(value) if math.isfinite(value) else value
        low_ok = value > lo if lo_open else value >= lo
        high_ok = value < hi if hi_open else value <= hi
        if not (math.isfinite(value) and low_ok and high_ok):
            raise ValueError(f"{name} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
                             f", got {value!r}")
        if multiple > 1 and value % multiple:
            raise ValueError(f"{name} must be a multiple of {multiple}, got {value!r}")
        return value
    return check


def choice(*options: str) -> Check:
    def check(name: str, value: Any) -> Any:
        if value not in options:
            raise ValueError(f"{name} must be one of {', '.join(options)}, got {value!r}")
        return value
    return check


_CLASSES = number(int, 1, MAX_CLASSES)
_DROPOUT = number(float, 0.0, 1.0, hi_open=True)
ARCH_ARGS: dict[str, dict[str, Check]] = {
    "cnn": {"num_classes": _CLASSES, "width": number(float, 0.0, 4.0, lo_open=True), "conv_dropout": _DROPOUT,
            "fc_dropout": _DROPOUT, "input_size": number(int, 16, 256, multiple=16)},
    "resnet18": {"num_classes": _CLASSES, "input_size": number(int, 16, 512), "stem": choice("imagenet", "small"),
                 "head_hidden": number(int, 1, 8192), "dropout": _DROPOUT},
}


def cnn_parameters(width: float = 1.0, input_size: int = 48, num_classes: int = len(EMOTIONS), **_: Any) -> int:
    """About how many weights models.cnn builds with these arguments (convolutions and linear layers)."""
    widths = [max(1, round(w * width)) for w in (64, 128, 256, 512)]
    fc = [max(1, round(w * width)) for w in (512, 256)]
    convs, cin = 0, 1
    for w in widths:
        convs += 9 * (cin * w + w * w)
        cin = w
    flat = widths[-1] * (input_size // 16) ** 2
    return convs + flat * fc[0] + fc[0] * fc[1] + fc[1] * num_classes


def check_arch_args(arch: Any, args: Any, what: str = "arch_args") -> dict:
    """``args`` checked against ``arch``'s constructor: known names, right types, sensible ranges, a model of at
    most MAX_PARAMETERS weights. ValueError naming the argument (``what.name``)."""
    if not isinstance(arch, str) or arch not in ARCH_ARGS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCH_ARGS)}")
    if not isinstance(args, dict):
        raise ValueError(f"{what} must be a mapping of argument names to values, got {args!r}")
    spec, out = ARCH_ARGS[arch], {}
    for name, value in args.items():
        if name not in spec:
            raise ValueError(f"{what}: {arch} has no argument {name!r} (its arguments: {', '.join(spec)})")
        out[name] = spec[name](f"{what}.{name}", value)
    if arch == "cnn" and cnn_parameters(**out) > MAX_PARAMETERS:
        raise ValueError(f"{what} {args} make a model of about {cnn_parameters(**out) / 1e6:,.0f} M parameters, "
                         f"more than the {MAX_PARAMETERS / 1e6:,.0f} M this project builds")
    return out


def check_classes(classes: Any, outputs: int | None) -> list[str]:
    """Class names: a non-empty list of distinct non-empty strings, one per model output (when ``outputs`` is
    known)."""
    if not isinstance(classes, (list, tuple)) or not classes:
        raise ValueError(f"classes must be a non-empty list of names, got {classes!r}")
    if not all(isinstance(c, str) and c.strip() for c in classes):
        raise ValueError(f"classes must be non-empty strings, got {list(classes)!r}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {list(classes)!r}")
    if outputs is not None and len(classes) != outputs:
        raise ValueError(f"{len(classes)} class names for a model with {outputs} outputs")
    return list(classes)


def check_temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.01 <= value <= 100:
        raise ValueError(f"temperature must be a number in [0.01, 100], got {value!r}")
    return float(value)

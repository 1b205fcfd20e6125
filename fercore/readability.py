"""Whether a face can be read: a label only where the model's answer is worth printing.

A face turned away, tilted, tiny, blurred, or one the model is unsure of gets no emotion word but the reason
("uncertain"), never a confident guess. The measures come from the face detector's six keypoints, the box and
the model-size crop. The limits belong to a model: ``python -m tools.readability_curves --store`` measures
where its accuracy on FER-2013's val split falls to 50% and stores them in its checkpoint (figures in the
README); the app reads them from there, and the command line can change each one.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

# Reasons, in the order they are checked (the first that applies is reported).
REASONS = ("turned away", "tilted", "too small", "blurred", "unsure")


# How far the nose tip stands in front of the eyes, in eye distances (a typical adult face; BlazeFace's keypoints).
NOSE_DEPTH = 0.55


def head_pose(keypoints: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """(yaw, roll) in degrees from BlazeFace's keypoints (right eye, left eye, nose, mouth, right ear, left ear;
    the subject's right eye is on the image's left).

    Roll is the slope of the line through the eyes. Yaw comes from how far the nose sits from the eyes' midpoint
    along that line: a head turned by yaw shows the nose tip NOSE_DEPTH x sin(yaw) aside while the eyes close in
    by cos(yaw), so the offset in eye distances is NOSE_DEPTH x tan(yaw). 0 is frontal; sign: positive when the
    face turns to the image's right. The ears are not used: BlazeFace places a hidden ear anyway, and the old
    ear-based estimate called most three-quarter faces profiles (90 degrees; docs/readability.md).
    """
    (rex, rey), (lex, ley), (nx, ny) = keypoints[:3]
    dx, dy = lex - rex, ley - rey
    roll = math.degrees(math.atan2(dy, dx))
    eyes = math.hypot(dx, dy)
    if eyes == 0:
        return 0.0, roll
    offset = ((nx - (rex + lex) / 2) * dx + (ny - (rey + ley) / 2) * dy) / (eyes * eyes)
    return math.degrees(math.atan2(offset, NOSE_DEPTH)), roll


def sharpness(face: np.ndarray) -> float:
    """Variance of the Laplacian of a grayscale face at the model's input size (so it does not depend on how
    large the face was in the frame); low for blurred or featureless faces."""
    x = face.astype(np.float32)
    lap = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
    return float(lap.var())


# The range each limit may take (a checkpoint's stored limits and the command-line options are checked against it).
RANGES = {"max_yaw": (0.0, 90.0), "max_roll": (0.0, 180.0), "min_size": (0.0, 10000.0),
          "min_sharpness": (0.0, 1e6), "min_confidence": (0.0, 1.0)}


@dataclass(frozen=True)
class ReadabilityLimits:
    """Where a face stops being readable: where a model's accuracy on FER-2013 val falls to 50% (a label as
    likely wrong as right). Each model carries its own (``from_curves``, stored by ``python -m
    tools.readability_curves --store``); these defaults, measured for weights/default.pt
    (weights/eval/default/readability.json), stand in for a model that carries none."""

    max_yaw: float = 30.0         # degrees of head turn: chosen on real faces (docs/choosing_models.md)
    max_roll: float = 41.0        # degrees of head tilt
    min_size: float = 9.0         # pixels, the shorter side of the detector's box
    min_sharpness: float = 10.0   # Laplacian variance of the model-size crop
    min_confidence: float = 0.35  # calibrated probability of the top class: chosen on real faces

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "ReadabilityLimits":
        """Limits as a checkpoint stores them (``to_dict``), checked: ValueError naming a missing, unknown or
        out-of-range value."""
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict):
            raise ValueError(f"readability limits must be a mapping of {', '.join(names)}, got {data!r}")
        problems = [f"unknown {key!r}" for key in data if key not in names]
        problems += [f"missing {name!r}" for name in names if name not in data]
        if problems:
            raise ValueError(f"readability limits: {', '.join(problems)}")
        for name in names:
            value, (lo, hi) = data[name], RANGES[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ValueError(f"readability limit {name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
        return cls(**{name: float(data[name]) for name in names})

    @classmethod
    def from_curves(cls, measured: dict) -> "ReadabilityLimits":
        """The limits ``tools.readability_curves`` measured (its ``limits``: None where accuracy never
        crossed the target), rounded to whole degrees, pixels and sharpness and to 0.01 of confidence; where a
        curve never crossed, the default stands. Tilt is the limit as cropped: it applies without --align."""
        fallback = cls()

        def rounded(name: str, digits: int = 0) -> float:
            value = measured.get(name)
            return getattr(fallback, name) if value is None else round(float(value), digits)

        return cls(max_yaw=rounded("max_yaw"), max_roll=rounded("max_roll"), min_size=rounded("min_size"),
                   min_sharpness=rounded("min_sharpness"), min_confidence=rounded("min_confidence", 2))


def unreadable_reason(limits: ReadabilityLimits, *, size: float, sharp: float, confidence: float,
                      pose: tuple[float, float] | None) -> str | None:
    """The first reason (REASONS) a face cannot be read, or None when it can. ``pose`` is None when the
    detector gave no keypoints."""
    if pose is not None and abs(pose[0]) > limits.max_yaw:
        return "turned away"
    if pose is not None and abs(pose[1]) > limits.max_roll:
        return "tilted"
    if size < limits.min_size:
        return "too small"
    if sharp < limits.min_sharpness:
        return "blurred"
    if confidence < limits.min_confidence:
        return "unsure"
    return None

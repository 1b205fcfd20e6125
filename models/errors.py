"""Errors of loading and running a model, importable without torch (the ONNX Runtime path of the app runs
without it)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy loads with the arrays checked, not with the commands that import these errors first
    import numpy as np


class CheckpointError(ValueError):
    """The file is missing, unreadable, or not a checkpoint (or ONNX export) written by this project; or its
    model gives outputs that are not numbers."""


def finite_probabilities(probs: np.ndarray) -> np.ndarray:
    """``probs`` when every one is a finite number; CheckpointError when weights that overflow made any NaN or
    infinite, so no label with confidence NaN is ever reported as a result."""
    import numpy as np

    bad = ~np.isfinite(probs).all(axis=1) if probs.ndim == 2 else ~np.isfinite(probs)
    if bad.any():
        raise CheckpointError(f"the model's outputs are not numbers (NaN or infinite) for {int(bad.sum())} of "
                              f"{len(bad)} faces: its weights overflow; use another model or retrain this one")
    return probs

"""Self-describing checkpoints: everything needed to rebuild and feed the model travels with its weights.

Layout (a plain dict of tensors and builtins, so ``torch.load(weights_only=True)`` reads it)::

    format      "fer-emotion-checkpoint"      version  1
    arch        registry name                 arch_args  constructor keyword arguments
    classes     label names in output order   preprocessing  Preprocessing.to_dict()
    temperature logits are divided by it before the softmax (1.0 until training.calibrate fits one)
    config      the training config           epoch, metrics
    model       state dict                    training   optional resume state (optimizer, RNG, ...)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from fercore.atomic import atomic_path
from models.errors import CheckpointError
from models.preprocessing import Preprocessing
from models import build_model

FORMAT = "fer-emotion-checkpoint"
VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save through a temporary file and a rename: a crash never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def make_checkpoint(model: nn.Module, classes: list[str] | tuple[str, ...], config: dict | None = None,
                    epoch: int = 0, metrics: dict | None = None, training: dict | None = None) -> dict:
    """The checkpoint of a model made by ``build_model`` (which recorded its architecture and arguments)."""
    model = getattr(model, "module", model)  # unwrap DDP
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "arch": model.arch,
        "arch_args": dict(model.arch_args),
        "classes": list(classes),
        "preprocessing": model.preprocessing.to_dict(),
        "temperature": float(getattr(model, "temperature", 1.0)),
        "config": config or {},
        "epoch": epoch,
        "metrics": metrics or {},
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if training is not None:
        ckpt["training"] = training
    return ckpt


def read_checkpoint(path: str | Path) -> dict:
    """Load and validate a checkpoint dict (tensors on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of this project (no '{FORMAT}' marker); "
                              "train one with `python -m training.run` or use weights/ from the repository")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt['version']}; this code reads up to {VERSION}")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> nn.Module:
    """Rebuild the model a checkpoint describes, with its weights, in eval mode."""
    try:
        preprocessing = Preprocessing.from_dict(ckpt["preprocessing"])
    except ValueError as exc:
        raise CheckpointError(f"the checkpoint's preprocessing is invalid: {exc}") from exc
    temperature = ckpt.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0.01 <= temperature <= 100:
        raise CheckpointError(f"the checkpoint's temperature must be a number in [0.01, 100], got {temperature!r}")
    model = build_model(ckpt["arch"], **ckpt["arch_args"])
    model.load_state_dict(ckpt["model"])
    model.preprocessing = preprocessing
    model.temperature = float(temperature)
    return model.eval()


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Model (eval mode, CPU) and its checkpoint metadata from a checkpoint file."""
    ckpt = read_checkpoint(path)
    return model_from_checkpoint(ckpt), ckpt

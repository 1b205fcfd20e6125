"""Ensembles: several checkpoints run as one model whose probabilities are the mean of theirs.

    model, description = load_ensemble(["runs/a/best.pt", "runs/b/best.pt"])

``Ensemble.forward`` returns the log of the mean of the members' calibrated probabilities (each member's
softmax(logits / its temperature)), and the ensemble's own temperature is 1, so ``softmax(forward(x))`` *is*
that mean. Everything that applies softmax(logits / temperature) to a model (models.inference.predict, the ONNX
export, the app's classifiers) therefore runs an ensemble unchanged. The members must agree on what they
predict and how they are fed: the same class names in the same order and the same preprocessing (size, mean,
std, margin); a member that differs is refused with a CheckpointError naming its file. Where faces stop being
readable has not been measured for an ensemble: it takes its first member's limits (fercore.readability).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from fercore.paths import one_or_more
from models.checkpoint import load_model
from models.errors import CheckpointError

ARCH = "ensemble"


class Ensemble(nn.Module):
    """Members' calibrated probabilities averaged; ``forward`` gives their log (see the module docstring)."""

    arch = ARCH

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        self.members = nn.ModuleList(members)
        self.temperatures = [float(getattr(m, "temperature", 1.0)) for m in members]
        self.preprocessing = members[0].preprocessing
        self.temperature = 1.0  # the members' temperatures are applied inside forward
        self.arch_args = {"members": len(members)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([F.log_softmax(m(x).float() / t, dim=1)
                                 for m, t in zip(self.members, self.temperatures)])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def load_members(paths: Sequence[str | Path]) -> list[tuple[nn.Module, dict]]:
    """Each checkpoint's model (eval mode, CPU) and metadata, refused unless all predict the same classes in the
    same order from the same preprocessing (CheckpointError naming the first file that differs)."""
    if not paths:
        raise CheckpointError("no checkpoint given")
    members = [load_model(path) for path in paths]
    (_, first), first_path = members[0], paths[0]
    for (model, ckpt), path in zip(members[1:], paths[1:]):
        if ckpt["classes"] != first["classes"]:
            raise CheckpointError(f"{path} predicts the classes {ckpt['classes']}, {first_path} "
                                  f"{first['classes']}: the members of an ensemble must predict the same classes "
                                  "in the same order")
        if model.preprocessing != members[0][0].preprocessing:
            raise CheckpointError(f"{path} takes its input as {model.preprocessing.to_dict()}, {first_path} as "
                                  f"{members[0][0].preprocessing.to_dict()}: the members of an ensemble must "
                                  "share their preprocessing (size, mean, std, margin)")
    return members


def describe(members: list[tuple[nn.Module, dict]], paths: Sequence[str | Path]) -> dict:
    """The description of an ensemble (what a checkpoint's metadata says of one model): its classes and
    preprocessing, temperature 1, the first member's readability limits where it has them, and per member its
    file, architecture, temperature, epoch and metrics."""
    first = members[0][1]
    limits = {"readability": first["readability"]} if "readability" in first else {}
    return {"arch": ARCH, "arch_args": {"members": len(members)}, "classes": list(first["classes"]),
            "preprocessing": members[0][0].preprocessing.to_dict(), "temperature": 1.0, **limits,
            "members": [{"checkpoint": str(path), "arch": ckpt["arch"], "arch_args": ckpt["arch_args"],
                         "temperature": float(model.temperature), "epoch": ckpt.get("epoch", 0),
                         "metrics": ckpt.get("metrics", {})}
                        for (model, ckpt), path in zip(members, paths)]}


def load_ensemble(paths: str | Path | Sequence[str | Path]) -> tuple[nn.Module, dict]:
    """The model of one checkpoint or the Ensemble of several, and its description: for one path exactly
    ``load_model``'s model and checkpoint; for several an Ensemble and ``describe``'s dict."""
    paths = one_or_more(paths)
    if len(paths) == 1:
        return load_model(paths[0])
    members = load_members(paths)
    return Ensemble([model for model, _ in members]).eval(), describe(members, paths)

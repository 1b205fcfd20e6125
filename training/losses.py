"""Focal loss with label smoothing and class weights, the loss factory, and what training minimises: the
label loss over mixup's pairs, blended with a teacher's soft targets (distillation from one checkpoint or an
ensemble, its targets cached per image or computed online on each augmented batch)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fercore.classes import EMOTIONS
from models.errors import CheckpointError
from models.ensemble import load_ensemble
from models.inference import predict
from models.preprocessing import Preprocessing


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) over smoothed targets: -sum_c w_c q_c (1 - p_c)^gamma log p_c.

    With gamma 0 it equals ``F.cross_entropy(weight=w, label_smoothing=eps)``, including the "mean"
    reduction's division by the summed weights of the true classes.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be mean, sum or none, got {reduction!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.reduction = reduction
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = logits.shape[1]
        log_p = F.log_softmax(logits.float(), dim=1)
        q = F.one_hot(target, k).float() * (1 - self.label_smoothing) + self.label_smoothing / k
        per_class = -q * log_p
        if self.gamma:
            per_class = per_class * (1 - log_p.exp()).pow(self.gamma)
        if self.weight is not None:
            per_class = per_class * self.weight
        loss = per_class.sum(dim=1)
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        denom = self.weight[target].sum() if self.weight is not None else loss.new_tensor(len(target))
        return loss.sum() / denom


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_c q_c log p_c for target distributions q (e.g. a teacher's)."""
    return -(target_probs * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """n / (K * count_c): rare classes (FER-2013's disgust) weigh more; mean weight over samples is 1."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    counts[counts == 0] = 1
    return torch.tensor(len(labels) / (num_classes * counts), dtype=torch.float32)


def build_loss(cfg: dict, train_labels: np.ndarray, num_classes: int) -> nn.Module:
    cw = cfg["class_weights"]
    if cw == "balanced":
        weight = balanced_class_weights(train_labels, num_classes)
    else:
        weight = torch.tensor(cw, dtype=torch.float32) if cw is not None else None
    gamma = cfg["gamma"] if cfg["name"] == "focal" else 0.0
    return FocalLoss(gamma=gamma, weight=weight, label_smoothing=cfg["label_smoothing"])


class Objective(nn.Module):
    """The training loss of a batch: the label loss, over mixup's pairs as the batch was mixed (lam * against
    each image's own label + (1 - lam) * against its partner's), blended with the soft cross-entropy against the
    teacher's probabilities for the batch as fed (``mix_targets`` or ``online_targets``): (1 - w) * label + w * soft.
    """

    def __init__(self, label_loss: nn.Module, teacher_weight: float = 0.0) -> None:
        super().__init__()
        self.label_loss = label_loss
        self.teacher_weight = teacher_weight

    def forward(self, logits: torch.Tensor, y: torch.Tensor, soft_targets: torch.Tensor | None = None,
                partner: torch.Tensor | None = None, lam: float = 1.0) -> torch.Tensor:
        loss = self.label_loss(logits, y)
        if partner is not None:
            loss = lam * loss + (1 - lam) * self.label_loss(logits, y[partner])
        if soft_targets is None:
            return loss
        w = self.teacher_weight
        return (1 - w) * loss + w * soft_cross_entropy(logits, soft_targets)


def mix_targets(probs: torch.Tensor, partner: torch.Tensor | None, lam: float) -> torch.Tensor:
    """Per-image target distributions mixed as mixup mixed their images (soft cross-entropy is linear in its
    target, so this scores each image against its own and its partner's targets, weighted lam and 1 - lam)."""
    return probs if partner is None else lam * probs + (1 - lam) * probs[partner]


def load_teacher(paths: str | Sequence[str], preprocessing: Preprocessing, online: bool) -> nn.Module:
    """The model of ``loss.teacher``: one checkpoint, or the Ensemble of several (their calibrated probabilities
    averaged), in eval mode. Refused unless it predicts the training classes from faces of the model's size, and,
    ``online`` (fed the student's normalised batches), unless it also normalises them as the model does."""
    teacher, description = load_ensemble(paths)
    where = f"loss.teacher={paths}"
    if description["classes"] != list(EMOTIONS):
        raise CheckpointError(f"{where} predicts {description['classes']}, training uses {list(EMOTIONS)}")
    theirs = teacher.preprocessing
    if theirs.size != preprocessing.size:
        raise CheckpointError(f"{where} takes {theirs.size}-pixel faces, the model {preprocessing.size}")
    if online and (theirs.mean, theirs.std) != (preprocessing.mean, preprocessing.std):
        raise CheckpointError(f"{where} normalises faces with mean {theirs.mean} and std {theirs.std}, the model with "
                              f"{preprocessing.mean} and {preprocessing.std}: an online teacher sees the model's "
                              "batches, so they must agree (loss.teacher_mode: cached works)")
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def teacher_targets(teacher: nn.Module, images: torch.Tensor, tta: str, batch_size: int,
                    device: torch.device, progress: bool = False) -> torch.Tensor:
    """The teacher's probabilities for uint8 ``images``, averaged over its test-time views: computed once, as
    they never change (at half width on 2 cores about 80 s per view over FER-2013's training set)."""
    return torch.from_numpy(predict(teacher.to(device), images, teacher.preprocessing, batch_size, device, tta=tta,
                                    progress=progress))


@torch.no_grad()
def online_targets(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The teacher's calibrated probabilities for the normalised batch ``x`` exactly as the student sees it
    (augmented and mixed): targets that follow every view, at the cost of a teacher forward pass per step."""
    return F.softmax(teacher(x).float() / float(getattr(teacher, "temperature", 1.0)), dim=1)

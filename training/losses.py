"""Focal loss with label smoothing and class weights, the loss factory, and what training minimises: the
label loss blended with a teacher's soft targets (self-distillation), over mixup's pairs."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fercore.classes import EMOTIONS
from models.checkpoint import CheckpointError, load_model
from models.inference import predict


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
    """The training loss of a batch. Distilling, the label loss is blended with the soft cross-entropy against
    the teacher's probabilities: (1 - w) * label + w * soft. A mixup batch (``partner``, ``lam``) is scored as
    it was mixed: lam * against its own targets + (1 - lam) * against its partners'."""

    def __init__(self, label_loss: nn.Module, teacher_weight: float = 0.0) -> None:
        super().__init__()
        self.label_loss = label_loss
        self.teacher_weight = teacher_weight

    def forward(self, logits: torch.Tensor, y: torch.Tensor, teacher_probs: torch.Tensor | None = None,
                partner: torch.Tensor | None = None, lam: float = 1.0) -> torch.Tensor:
        loss = self.distill(logits, y, teacher_probs)
        if partner is None:
            return loss
        partner_probs = None if teacher_probs is None else teacher_probs[partner]
        return lam * loss + (1 - lam) * self.distill(logits, y[partner], partner_probs)

    def distill(self, logits: torch.Tensor, y: torch.Tensor, teacher_probs: torch.Tensor | None) -> torch.Tensor:
        loss = self.label_loss(logits, y)
        if teacher_probs is None:
            return loss
        w = self.teacher_weight
        return (1 - w) * loss + w * soft_cross_entropy(logits, teacher_probs)


def load_teacher(path: str, size: int) -> nn.Module:
    """The checkpoint of ``loss.teacher``, refused unless it predicts the training classes from ``size`` faces."""
    teacher, ckpt = load_model(path)
    if ckpt["classes"] != list(EMOTIONS):
        raise CheckpointError(f"loss.teacher={path} predicts {ckpt['classes']}, training uses {list(EMOTIONS)}")
    if teacher.preprocessing.size != size:
        raise CheckpointError(f"loss.teacher={path} takes {teacher.preprocessing.size}-pixel faces, the model {size}")
    return teacher


def teacher_targets(teacher: nn.Module, images: torch.Tensor, tta: str, batch_size: int,
                    device: torch.device, progress: bool = False) -> torch.Tensor:
    """The teacher's probabilities for uint8 ``images``, averaged over its test-time views: computed once, as
    they never change (at half width on 2 cores about 80 s per view over FER-2013's training set)."""
    return torch.from_numpy(predict(teacher.to(device), images, teacher.preprocessing, batch_size, device, tta=tta,
                                    progress=progress))

"""Focal loss with label smoothing and class weights, soft-target cross-entropy for distillation; the loss
factory used by the trainer."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


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

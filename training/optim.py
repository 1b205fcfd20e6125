"""Optimizer and learning-rate schedule from the config (as timm's create_optimizer_v2 and create_scheduler)."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.optim import lr_scheduler


def build_optimizer(cfg: dict, model: nn.Module) -> torch.optim.Optimizer:
    """A pretrained backbone (a model with ``backbone_parameters``) may learn at its own ``optim.backbone_lr``."""
    o = cfg["optim"]
    if o["backbone_lr"] is not None and hasattr(model, "backbone_parameters"):
        groups = [{"params": model.backbone_parameters(), "lr": o["backbone_lr"]},
                  {"params": model.head_parameters(), "lr": o["lr"]}]
    else:
        groups = [{"params": list(model.parameters()), "lr": o["lr"]}]
    if o["name"] == "adam":
        return torch.optim.Adam(groups, lr=o["lr"], weight_decay=o["weight_decay"])
    if o["name"] == "adamw":
        return torch.optim.AdamW(groups, lr=o["lr"], weight_decay=o["weight_decay"])
    return torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"], nesterov=True)


def build_scheduler(cfg: dict, optimizer: torch.optim.Optimizer,
                    steps_per_epoch: int) -> lr_scheduler.LRScheduler | None:
    """One-cycle steps after every batch, the others after every epoch (see step_after_epoch)."""
    s, epochs = cfg["sched"], cfg["train"]["epochs"]
    if s["name"] == "none":
        return None
    if s["name"] == "step":
        return lr_scheduler.StepLR(optimizer, s["step_size"], s["gamma"])
    if s["name"] == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=s["factor"], patience=s["patience"],
                                              min_lr=s["min_lr"])
    if s["name"] == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=s["min_lr"])
    max_lr = [g["lr"] for g in optimizer.param_groups]
    return lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                   pct_start=s["pct_start"])


def steps_per_batch(scheduler: lr_scheduler.LRScheduler | None) -> bool:
    return isinstance(scheduler, lr_scheduler.OneCycleLR)


def step_after_epoch(scheduler: lr_scheduler.LRScheduler | None, val_acc: float) -> None:
    """Plateau reads the epoch's validation accuracy; one-cycle has stepped after each batch already."""
    if scheduler is None or steps_per_batch(scheduler):
        return
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_acc)
    else:
        scheduler.step()

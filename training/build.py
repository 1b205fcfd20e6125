"""Everything a Trainer trains with, built from the config: the process set-up (run folder claimed and locked,
device, log, seeds), the model, data, sampler, optimizer, schedule, objective and augmentation."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
from torch.utils.data import DistributedSampler

from fercore.classes import EMOTIONS
from models import build_model
from training.augment import BatchAugment, mixup
from training.errors import ConfigError
from training.losses import Objective, build_loss, load_teacher, teacher_targets
from training.optim import build_optimizer, build_scheduler
from training.rundir import RunLock, check_free_space
from training.utils import Data, Dist, init_from, load_data, log, setup_process


@dataclass
class Parts:
    """What a Trainer trains with: built from the config by build_parts, or ready-made by a test."""

    dist: Dist
    device: torch.device
    model: nn.Module
    data: Data
    sampler: DistributedSampler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    criterion: Objective
    # uint8 faces, generator -> normalised batch, each image's mixup partner (None without mixup), lambda
    augment: Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor | None, float]]
    teacher_probs: torch.Tensor | None = None  # the teacher's probabilities for every training image (cached)
    teacher: nn.Module | None = None  # the teacher itself, run on every batch (online)
    lock: RunLock | None = None  # the output folder's, held until the Trainer finishes (rank 0 only)


def augment_and_mix(faces: torch.Tensor, gen: torch.Generator, augment: BatchAugment,
                    alpha: float) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """The per-image augmentation, then mixup when ``alpha`` > 0."""
    x = augment(faces, gen)
    return mixup(x, alpha, gen) if alpha > 0 else (x, None, 1.0)


def build_parts(cfg: dict, resume: bool = False, overwrite: bool = False) -> Parts:
    """Set up this process (claiming output.dir: see training.rundir; ``resume`` and ``overwrite`` as there), then
    build in the order that fixes every random draw: the weights first, from the seeded generator, a teacher's
    (random until loaded) last. The lock on output.dir is given back if building fails."""
    dist, device, lock = setup_process(cfg, resume, overwrite)
    try:
        return _build(cfg, dist, device, lock, resume)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _build(cfg: dict, dist: Dist, device: torch.device, lock: RunLock | None, resume: bool) -> Parts:
    t, m, loss = cfg["train"], cfg["model"], cfg["loss"]
    # A resumed run's own last.pt replaces the starting weights (ImageNet's, init_from's): neither file is read then.
    try:
        model = build_model(m["name"], pretrained=m["pretrained"] and not resume,
                            weights_path=None if resume else m["weights_path"], **m["args"])
    except FileNotFoundError as exc:  # model.weights_path
        raise ConfigError(str(exc)) from None
    if dist.main:
        check_free_space(cfg["output"]["dir"], sum(v.numel() * v.element_size() for v in model.state_dict().values()),
                         cfg)
    if m["init_from"] and not resume:
        init_from(model, m["init_from"], cfg)
    data = load_data(cfg, model.preprocessing.size, dist.main)
    model.to(device)
    if t["channels_last"]:
        model.to(memory_format=torch.channels_last)
    sampler = DistributedSampler(range(len(data.train_labels)), num_replicas=dist.world, rank=dist.rank,
                                 shuffle=True, seed=cfg["seed"], drop_last=True)
    if len(sampler) < t["batch_size"]:
        raise ConfigError(f"train.batch_size {t['batch_size']} is larger than the training set per process "
                          f"({len(sampler)} images)")
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, len(sampler) // t["batch_size"])
    label_loss = build_loss(loss, data.train_labels, len(EMOTIONS)).to(device)
    teacher_probs, online_teacher = None, None
    if loss["teacher"]:
        online = loss["teacher_mode"] == "online"
        teacher = load_teacher(loss["teacher"], model.preprocessing, online).to(device)
        if online:
            online_teacher = teacher
            log.info(f"teacher {loss['teacher']}: targets computed online on each augmented batch")
        else:
            log.info(f"teacher {loss['teacher']}: targets ({loss['teacher_tta']} TTA) for {len(data.train_labels)} "
                     "training images")
            teacher_probs = teacher_targets(teacher, data.train_images, loss["teacher_tta"], t["eval_batch_size"],
                                            device, dist.main)
            log.info(f"teacher agrees with the training labels on "
                     f"{(teacher_probs.numpy().argmax(1) == data.train_labels).mean():.1%}")
    augment = partial(augment_and_mix, augment=BatchAugment(cfg["augment"], model.preprocessing),
                      alpha=cfg["augment"]["mixup_alpha"])
    return Parts(dist, device, model, data, sampler, optimizer, scheduler,
                 Objective(label_loss, loss["teacher_weight"]), augment, teacher_probs, online_teacher, lock)

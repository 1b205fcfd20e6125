"""Everything a Trainer trains with, built from the config: the process set-up (run folder claimed and locked,
device, log, seeds), the model and its starting weights, data, sampler, optimizer, schedule, objective and
augmentation."""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DistributedSampler

from fercore.classes import EMOTIONS
from models import build_model
from models.checkpoint import CheckpointError, read_checkpoint, state_dict_mismatch
from training.augment import BatchAugment, mixup
from training.data import load_split, stratified_subset
from training.distributed import Dist, init_distributed, pick_device
from training.errors import ConfigError, DataError
from training.ferplus import face_mask
from training.logs import log, setup_logging
from training.losses import Objective, build_loss, load_teacher, teacher_targets
from training.optim import build_optimizer, build_scheduler
from training.rundir import RunLock, check_free_space, check_run_folder, claim_run_folder


def setup_process(cfg: dict, resume: bool = False,
                  overwrite: bool = False) -> tuple[Dist, torch.device, RunLock | None]:
    """Threads, torchrun, device, run folder, log and seeds, before anything is built. Rank 0 claims and locks
    output.dir (training.rundir: ``resume`` and ``overwrite`` as there) and returns the lock; the others check
    it."""
    t = cfg["train"]
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    dist = init_distributed(t["device"])
    device = pick_device(t["device"], dist)
    out = Path(cfg["output"]["dir"])
    if dist.main:
        lock = claim_run_folder(out, resume, overwrite)
    else:
        lock = None
        check_run_folder(out, resume, overwrite, config_file=False)
    setup_logging(out, dist.main)
    random.seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    return dist, device, lock


@dataclass
class Data:
    """The train and val splits: uint8 faces and their labels."""

    train_images: torch.Tensor  # uint8 (N, H, W)
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray


def load_data(cfg: dict, size: int, progress: bool) -> Data:
    """The configured train and val splits of ``size`` faces: the training images FER+ marks as not a face left
    out (``data.exclude_not_faces``), then ``data.limit`` of each split, keeping class proportions."""
    d = cfg["data"]
    train_x, train_y = load_split(d["root"], d["train_split"], d["cache_dir"], progress)
    val_x, val_y = load_split(d["root"], d["val_split"], d["cache_dir"], progress)
    if d["exclude_not_faces"]:
        keep = face_mask(d["root"], d["train_split"], d["exclude_not_faces"])
        log.info(f"left out {len(keep) - keep.sum()} training images {d['exclude_not_faces']} marks as not a face")
        train_x, train_y = train_x[keep], train_y[keep]
    if d["limit"]:
        keep = stratified_subset(train_y, d["limit"], cfg["seed"])
        train_x, train_y = train_x[keep], train_y[keep]
        keep = stratified_subset(val_y, d["limit"], cfg["seed"])
        val_x, val_y = val_x[keep], val_y[keep]
    if train_x.shape[1:] != (size, size):
        raise DataError(f"model {cfg['model']['name']} expects {size}x{size} faces, data has "
                        f"{train_x.shape[1]}x{train_x.shape[2]}")
    return Data(torch.from_numpy(train_x), train_y, val_x, val_y)


def init_from(model: nn.Module, path: str, cfg: dict) -> None:
    """Start from a trained checkpoint's weights (``model.init_from``), e.g. to continue it with a new schedule."""
    ckpt, m = read_checkpoint(path), cfg["model"]
    if ckpt["arch"] != m["name"]:
        raise CheckpointError(f"model.init_from={path} holds a {ckpt['arch']!r} model, the config builds {m['name']!r}")
    mismatch = state_dict_mismatch(model, ckpt["model"])
    if mismatch:
        raise CheckpointError(f"model.init_from={path} does not fit the configured model {m['args']} (it was built "
                              f"with {ckpt['arch_args']}): {mismatch}")
    model.load_state_dict(ckpt["model"])
    log.info(f"initialised from {path} (val acc {ckpt.get('metrics', {}).get('val_acc', float('nan')):.4f})")


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

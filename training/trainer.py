"""The training loop: one epoch at a time, validated, checkpointed, resumable to the exact batch.

Resume is exact because everything random is a function of saved state: the sample order comes from
DistributedSampler(seed, epoch), augmentation from a per-epoch generator whose state is saved, and
dropout from torch's global generator, saved too. Ctrl-C finishes the current batch, saves ``last.pt``
and exits; ``--resume`` continues from there.
"""
from __future__ import annotations

import logging
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn as nn
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from fercore.classes import EMOTIONS
from models import build_model
from fercore.atomic import atomic_path
from models.inference import predict
from models.checkpoint import CheckpointError, atomic_save, load_model, make_checkpoint, read_checkpoint
from training.augment import BatchAugment, mixup
from training.data import load_split, stratified_subset
from training.losses import build_loss, soft_cross_entropy
from fercore.metrics import classification_report, confusion_figure

log = logging.getLogger("training")


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when run directly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    dist = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device_pref != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(dist.local_rank)
    torch_dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist


def pick_device(pref: str, dist: Dist) -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but CUDA is not available; use train.device=auto or cpu")
    if pref in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def setup_logging(out_dir: Path, main: bool) -> None:
    log.handlers.clear()
    log.setLevel(logging.INFO if main else logging.WARNING)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    log.addHandler(console)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(out_dir / "train.log")
        file.setFormatter(fmt)
        log.addHandler(file)


def build_optimizer(cfg: dict, model: nn.Module) -> torch.optim.Optimizer:
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


def build_scheduler(cfg: dict, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """The scheduler and whether it steps per batch (OneCycle) rather than per epoch."""
    s, epochs = cfg["sched"], cfg["train"]["epochs"]
    sched = torch.optim.lr_scheduler
    if s["name"] == "none":
        return None, False
    if s["name"] == "step":
        return sched.StepLR(optimizer, s["step_size"], s["gamma"]), False
    if s["name"] == "plateau":
        return sched.ReduceLROnPlateau(optimizer, mode="max", factor=s["factor"], patience=s["patience"],
                                       min_lr=s["min_lr"]), False
    if s["name"] == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=s["min_lr"]), False
    max_lr = [g["lr"] for g in optimizer.param_groups]
    return sched.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
                            pct_start=s["pct_start"]), True


class StopFlag:
    """First Ctrl-C asks the loop to stop after the current batch; a second one interrupts at once."""

    def __init__(self) -> None:
        self.set = False
        self._previous = None

    def __enter__(self) -> "StopFlag":
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        print("\nstopping after this batch and saving a resumable checkpoint (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)


class Trainer:
    def __init__(self, cfg: dict, resume: bool = False) -> None:
        self.cfg = cfg
        t = cfg["train"]
        if t["threads"]:
            torch.set_num_threads(t["threads"])
        self.dist = init_distributed(t["device"])
        self.device = pick_device(t["device"], self.dist)
        self.out = Path(cfg["output"]["dir"])
        setup_logging(self.out, self.dist.main)
        self._seed_everything(cfg["seed"])

        m = cfg["model"]
        self.model = build_model(m["name"], pretrained=m["pretrained"], weights_path=m["weights_path"], **m["args"])
        if m["init_from"]:
            self._init_from(m["init_from"])
        self.prep = self.model.preprocessing
        self._load_data()
        self.model.to(self.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and t["channels_last"]:
            self.model.to(memory_format=torch.channels_last)
        self.net = self.model
        if self.dist.world > 1:
            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.cuda else None)

        self.sampler = DistributedSampler(range(len(self.train_labels)), num_replicas=self.dist.world,
                                          rank=self.dist.rank, shuffle=True, seed=cfg["seed"], drop_last=True)
        self.steps_per_epoch = len(self.sampler) // t["batch_size"]
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch size {t['batch_size']} is larger than the training set per process "
                             f"({len(self.sampler)} images)")
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler, self.per_batch_sched = build_scheduler(cfg, self.optimizer, self.steps_per_epoch)
        self.loss_fn = build_loss(cfg["loss"], self.train_labels, len(EMOTIONS)).to(self.device)
        self.teacher_probs = self._teacher_targets(cfg["loss"]["teacher"]) if cfg["loss"]["teacher"] else None
        self.augment = BatchAugment(cfg["augment"], self.prep)
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if (
            self.cuda and t["amp"]) else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.gen = torch.Generator(device=self.device)

        # Progress; all of it goes into the resumable checkpoint.
        self.epoch, self.step, self.best_acc, self.bad_epochs = 0, 0, -1.0, 0
        self.history: list[dict] = []
        self.running = {"loss": 0.0, "correct": 0, "seen": 0}
        self.writer = None
        self._resume_rng: dict | None = None
        if resume:
            self._resume()
        log.info(f"model {m['name']} {m['args']}: {sum(p.numel() for p in self.model.parameters()):,} parameters; "
                 f"device {self.device}, {self.dist.world} process(es); "
                 f"{len(self.train_labels)} train / {len(self.val_labels)} val images")

    # ----- set-up -------------------------------------------------------------------------------------
    def _seed_everything(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _init_from(self, path: str) -> None:
        """Start from a trained checkpoint's weights, e.g. to continue it with a new schedule."""
        ckpt = read_checkpoint(path)
        name = self.cfg["model"]["name"]
        if ckpt["arch"] != name:
            raise CheckpointError(f"model.init_from={path} holds a {ckpt['arch']!r} model, the config builds {name!r}")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"model.init_from={path} does not fit the configured model "
                                  f"{self.cfg['model']['args']} (it was built with {ckpt['arch_args']}): "
                                  f"{str(exc).splitlines()[0]}") from exc
        log.info(f"initialised from {path} (val acc {ckpt.get('metrics', {}).get('val_acc', float('nan')):.4f})")

    def _load_data(self) -> None:
        d = self.cfg["data"]
        cache = d["cache_dir"]
        progress = self.dist.main
        train_x, train_y = load_split(d["root"], d["train_split"], cache, progress)
        val_x, val_y = load_split(d["root"], d["val_split"], cache, progress)
        if d["limit"]:
            keep = stratified_subset(train_y, d["limit"], self.cfg["seed"])
            train_x, train_y = train_x[keep], train_y[keep]
            keep = stratified_subset(val_y, d["limit"], self.cfg["seed"])
            val_x, val_y = val_x[keep], val_y[keep]
        size = self.prep.size
        if train_x.shape[1:] != (size, size):
            raise ValueError(f"model {self.cfg['model']['name']} expects {size}x{size} faces, data has "
                             f"{train_x.shape[1]}x{train_x.shape[2]}")
        self.train_images = torch.from_numpy(train_x)
        self.train_labels = train_y
        self.train_targets = torch.from_numpy(train_y)
        self.val_images, self.val_labels = val_x, val_y

    def _teacher_targets(self, path: str) -> torch.Tensor:
        """The teacher's class probabilities for every training image, averaged over its test-time views
        (loss.teacher_tta), computed once: at half width on 2 cores about 80 s per view."""
        teacher, ckpt = load_model(path)
        if ckpt["classes"] != list(EMOTIONS):
            raise CheckpointError(f"loss.teacher={path} predicts {ckpt['classes']}, training uses {list(EMOTIONS)}")
        if teacher.preprocessing.size != self.prep.size:
            raise CheckpointError(f"loss.teacher={path} takes {teacher.preprocessing.size}-pixel faces, the model "
                                  f"{self.prep.size}")
        tta = self.cfg["loss"]["teacher_tta"]
        log.info(f"teacher {path}: targets ({tta} TTA) for {len(self.train_labels)} training images")
        probs = predict(teacher.to(self.device), self.train_images, teacher.preprocessing,
                        self.cfg["train"]["eval_batch_size"], self.device, tta=tta, progress=self.dist.main)
        log.info(f"teacher agrees with the training labels on {(probs.argmax(1) == self.train_labels).mean():.1%}")
        return torch.from_numpy(probs)

    def _objective(self, logits: torch.Tensor, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss against labels ``y`` of images ``idx``, blended with the teacher's targets."""
        loss = self.loss_fn(logits, y)
        if self.teacher_probs is None:
            return loss
        w = self.cfg["loss"]["teacher_weight"]
        return (1 - w) * loss + w * soft_cross_entropy(logits, self.teacher_probs[idx].to(self.device))

    def _epoch_seed(self, epoch: int) -> int:
        return (self.cfg["seed"] * 1_000_003 + epoch * 1_009 + self.dist.rank) % (2**63)

    # ----- checkpoints --------------------------------------------------------------------------------
    def _training_state(self) -> dict:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "step": self.step, "best_acc": self.best_acc, "bad_epochs": self.bad_epochs,
            "history": self.history, "running": dict(self.running),
            "gen_state": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.cuda:
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _checkpoint(self, metrics: dict, with_training_state: bool) -> dict:
        return make_checkpoint(self.model, EMOTIONS,
                               config=self.cfg, epoch=self.epoch, metrics=metrics,
                               training=self._training_state() if with_training_state else None)

    def _save_last(self) -> None:
        if self.dist.main:
            metrics = self.history[-1] if self.history else {}
            atomic_save(self._checkpoint(metrics, with_training_state=True), self.out / "last.pt")

    def _resume(self) -> None:
        path = self.out / "last.pt"
        ckpt = read_checkpoint(path)
        if "training" not in ckpt:
            raise ValueError(f"{path} has no training state to resume from")
        if ckpt["arch"] != self.cfg["model"]["name"] or ckpt["arch_args"] != self.cfg["model"]["args"]:
            raise ValueError(f"{path} holds {ckpt['arch']} {ckpt['arch_args']}, the config asks for "
                             f"{self.cfg['model']['name']} {self.cfg['model']['args']}")
        self.model.load_state_dict(ckpt["model"])
        st = ckpt["training"]
        self.optimizer.load_state_dict(st["optimizer"])
        if self.scheduler is not None and st["scheduler"] is not None:
            self.scheduler.load_state_dict(st["scheduler"])
        self.scaler.load_state_dict(st["scaler"])
        self.epoch, self.step = st["epoch"], st["step"]
        self.best_acc, self.bad_epochs = st["best_acc"], st["bad_epochs"]
        self.history, self.running = st["history"], st["running"]
        self._resume_rng = st
        log.info(f"resumed from {path}: epoch {self.epoch + 1}, batch {self.step}, best val acc {self.best_acc:.4f}")

    # ----- the loop -----------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to ``train.epochs`` (or early stop). Returns the best epoch's metrics; raises
        KeyboardInterrupt after saving a resumable checkpoint when stopped by Ctrl-C."""
        t = self.cfg["train"]
        if self.dist.main:
            with atomic_path(self.out / "config.yaml") as tmp:
                tmp.write_text(yaml.safe_dump(self.cfg, sort_keys=False))
            if self.cfg["output"]["tensorboard"]:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(self.out / "tensorboard"))
        try:
            with StopFlag() as stop:
                while self.epoch < t["epochs"]:
                    if not self._train_epoch(stop):
                        self._save_last()
                        log.info(f"interrupted at epoch {self.epoch + 1}, batch {self.step}; saved "
                                 f"{self.out / 'last.pt'}; continue with --resume")
                        raise KeyboardInterrupt
                    if self._end_epoch():
                        break
        finally:
            if self.writer is not None:
                self.writer.close()
            if self.dist.world > 1 and torch_dist.is_initialized():
                torch_dist.destroy_process_group()
        best = max(self.history, key=lambda h: h["val_acc"]) if self.history else {}
        log.info(f"done: best val acc {best.get('val_acc', float('nan')):.4f} at epoch {best.get('epoch')}; "
                 f"checkpoints in {self.out}")
        return best

    def _stop_requested(self, stop: StopFlag) -> bool:
        if self.dist.world == 1:
            return stop.set
        flag = torch.tensor([float(stop.set)], device=self.device)
        torch_dist.all_reduce(flag)
        return bool(flag.item())

    def _train_epoch(self, stop: StopFlag) -> bool:
        """Run (the rest of) one epoch. False when stopped early by Ctrl-C."""
        bs = self.cfg["train"]["batch_size"]
        self.sampler.set_epoch(self.epoch)
        order = torch.tensor(list(self.sampler))
        self.gen.manual_seed(self._epoch_seed(self.epoch))
        resume_state, self._resume_rng = self._resume_rng, None
        if resume_state is not None:
            torch.set_rng_state(resume_state["torch_rng"])
            if self.cuda and "cuda_rng" in resume_state:
                torch.cuda.set_rng_state(resume_state["cuda_rng"], self.device)
        if resume_state is not None and self.step > 0:  # stopped mid-epoch: continue its augmentation stream
            self.gen.set_state(resume_state["gen_state"])
        else:
            self.running = {"loss": 0.0, "correct": 0, "seen": 0}
        self.net.train()
        start = time.time()
        bar = tqdm(total=self.steps_per_epoch, initial=self.step, desc=f"epoch {self.epoch + 1}/"
                   f"{self.cfg['train']['epochs']}", disable=not self.dist.main, unit="batch",
                   mininterval=1 if sys.stderr.isatty() else 60, leave=False)
        while self.step < self.steps_per_epoch:
            if self._stop_requested(stop):
                bar.close()
                return False
            idx = order[self.step * bs:(self.step + 1) * bs]
            loss, correct = self._train_step(idx)
            self.step += 1
            self.running["loss"] += loss * len(idx)
            self.running["correct"] += correct
            self.running["seen"] += len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{self.running['loss'] / self.running['seen']:.3f}",
                            acc=f"{self.running['correct'] / self.running['seen']:.3f}", refresh=False)
        bar.close()
        self.epoch_time = time.time() - start
        return True

    def _train_step(self, idx: torch.Tensor) -> tuple[float, int]:
        faces = self.train_images[idx].to(self.device, non_blocking=True)
        y = self.train_targets[idx].to(self.device, non_blocking=True)
        x = self.augment(faces, self.gen)
        alpha = self.cfg["augment"]["mixup_alpha"]
        partner, lam = None, 1.0
        if alpha > 0:
            x, partner, lam = mixup(x, alpha, self.gen)
        if self.cuda and self.cfg["train"]["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.writer is not None and self.epoch == 0 and self.step == 0:
            self.writer.add_images("train/augmented_batch", self.prep.denormalize(x[:64]))
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            logits = self.net(x)
            loss = self._objective(logits, idx, y)
            if partner is not None:
                loss = lam * loss + (1 - lam) * self._objective(logits, idx[partner.cpu()], y[partner])
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.per_batch_sched:
            self.scheduler.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {self.epoch + 1}, batch {self.step}; "
                                     "lower optim.lr")
        if partner is not None and lam < 0.5:  # a mixed image counts as its dominant image's class
            y = y[partner]
        return loss.item(), int((logits.argmax(1) == y).sum())

    def _end_epoch(self) -> bool:
        """Validate, log, step the scheduler, save checkpoints. True when early stopping fires."""
        train = torch.tensor([self.running["loss"], self.running["correct"], self.running["seen"]],
                             dtype=torch.float64, device=self.device)
        if self.dist.world > 1:
            torch_dist.all_reduce(train)
        probs = predict(self.model, self.val_images, self.prep, self.cfg["train"]["eval_batch_size"], self.device)
        # log-probabilities are valid logits (softmax(log p) = p), so the training loss applies to them.
        log_probs = torch.log(torch.from_numpy(probs).clamp_min(1e-8)).to(self.device)
        val_loss = float(self.loss_fn(log_probs, torch.from_numpy(self.val_labels).to(self.device)))
        report = classification_report(self.val_labels, probs.argmax(1), EMOTIONS)
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        metrics = {"epoch": self.epoch + 1, "train_loss": float(train[0] / train[2]),
                   "train_acc": float(train[1] / train[2]), "val_loss": val_loss, "val_acc": report["accuracy"],
                   "val_macro_f1": report["macro_f1"], "lr": lrs[-1], "epoch_seconds": self.epoch_time}
        self.history.append(metrics)
        improved = metrics["val_acc"] > self.best_acc
        if improved:
            self.best_acc, self.bad_epochs = metrics["val_acc"], 0
        else:
            self.bad_epochs += 1
        if self.scheduler is not None and not self.per_batch_sched:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(metrics["val_acc"])
            else:
                self.scheduler.step()
        log.info(f"epoch {metrics['epoch']:3d}/{self.cfg['train']['epochs']}  "
                 f"train loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.4f} | "
                 f"val loss {metrics['val_loss']:.4f} acc {metrics['val_acc']:.4f} macro-F1 "
                 f"{metrics['val_macro_f1']:.4f} | lr {metrics['lr']:.2e} | {self.epoch_time:.0f}s"
                 + ("  * best" if improved else ""))
        self._log_tensorboard(metrics, lrs, report)
        self.epoch, self.step = self.epoch + 1, 0
        if self.dist.main:
            if improved or self.cfg["output"]["keep_epochs"]:
                weights = self._checkpoint(metrics, with_training_state=False)
                if improved:
                    atomic_save(weights, self.out / "best.pt")
                if self.cfg["output"]["keep_epochs"]:
                    atomic_save(weights, self.out / f"epoch_{metrics['epoch']:03d}.pt")
            self._save_last()
        patience = self.cfg["train"]["early_stopping"]
        if patience and self.bad_epochs >= patience:
            log.info(f"early stopping: no better val accuracy for {patience} epochs")
            return True
        return False

    def _log_tensorboard(self, metrics: dict, lrs: list[float], report: dict) -> None:
        if self.writer is None:
            return
        e = metrics["epoch"]
        for key in ("train_loss", "val_loss"):
            self.writer.add_scalar(f"loss/{key[:-5]}", metrics[key], e)
        for key in ("train_acc", "val_acc"):
            self.writer.add_scalar(f"accuracy/{key[:-4]}", metrics[key], e)
        self.writer.add_scalar("macro_f1/val", metrics["val_macro_f1"], e)
        for i, lr in enumerate(lrs):
            self.writer.add_scalar(f"lr/group{i}", lr, e)
        self.writer.add_figure("val/confusion_matrix",
                               confusion_figure(report["confusion_matrix"], EMOTIONS, f"epoch {e}"), e)
        self.writer.flush()

"""The training loop: one epoch at a time, validated, checkpointed, resumable to the exact batch.

Resume is exact because everything random is a function of saved state: the sample order comes from
DistributedSampler(seed, epoch), augmentation from a per-epoch generator whose state is saved, and
dropout from torch's global generator, saved too. Ctrl-C finishes the current batch, saves ``last.pt``
and exits; ``--resume`` continues from there.
"""
from __future__ import annotations

import math
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as torch_dist
import torch.nn as nn
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from fercore.classes import EMOTIONS
from fercore.cli import CommandError
from fercore.metrics import classification_report
from models.checkpoint import CheckpointError, make_checkpoint, read_checkpoint, state_dict_mismatch
from models.inference import predict
from training.build import Data, Parts, build_parts
from training.distributed import any_rank, sum_across_processes
from training.logs import log, log_epoch
from training.losses import mix_targets, online_targets
from training.optim import step_after_epoch, steps_per_batch
from training.outputs import save_output
from training.rundir import check_resume, finished, record_resume, resume_message


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


def validate(model: nn.Module, data: Data, label_loss: nn.Module, batch_size: int,
             device: torch.device) -> tuple[float, dict]:
    """The loss (``label_loss``) and classification report of ``model`` on the val split."""
    probs = predict(model, data.val_images, model.preprocessing, batch_size, device)
    # log-probabilities are valid logits (softmax(log p) = p), so the training loss applies to them.
    log_probs = torch.log(torch.from_numpy(probs).clamp_min(1e-8)).to(device)
    val_loss = float(label_loss(log_probs, torch.from_numpy(data.val_labels).to(device)))
    return val_loss, classification_report(data.val_labels, probs.argmax(1), EMOTIONS)


class Trainer:
    def __init__(self, cfg: dict, parts: Parts | None = None, *, resume: bool = False, overwrite: bool = False) -> None:
        """Train ``parts``; without them (``Trainer(cfg, resume=...)``, as training.run calls it), those
        build_parts builds. ``resume`` continues from ``output.dir/last.pt``; ``overwrite`` replaces an earlier
        run there (without either, one is refused: training.rundir)."""
        p = parts if parts is not None else build_parts(cfg, resume, overwrite)
        self.cfg, self.dist, self.device, self.data, self.sampler = cfg, p.dist, p.device, p.data, p.sampler
        self.optimizer, self.scheduler, self.criterion, self.augment = p.optimizer, p.scheduler, p.criterion, p.augment
        self.teacher_probs, self.teacher, self.lock = p.teacher_probs, p.teacher, p.lock
        self.train_targets = torch.from_numpy(p.data.train_labels)
        self.out, self.cuda = Path(cfg["output"]["dir"]), p.device.type == "cuda"
        self.model = self.model_without_ddp = p.model  # the first is what the loop calls, the second is saved
        if self.dist.world > 1:
            self.model = DistributedDataParallel(p.model, device_ids=[self.device.index] if self.cuda else None)
        self.steps_per_epoch = len(self.sampler) // cfg["train"]["batch_size"]
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if (
            self.cuda and cfg["train"]["amp"]) else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.gen = torch.Generator(device=self.device)
        # Progress; all of it goes into the resumable checkpoint.
        self.epoch, self.step, self.best_acc, self.bad_epochs = 0, 0, -1.0, 0
        self.history, self.running, self.writer = [], {"loss": 0.0, "correct": 0, "seen": 0}, None
        self.finished = False  # resumed a run with nothing left to train
        self.resumed: tuple[dict, dict] | None = None  # the resumed state and the settings changed since
        try:
            if resume:
                self._resume()
        except BaseException:
            self.release()
            raise
        m = cfg["model"]
        log.info(f"model {m['name']} {m['args']}: {sum(q.numel() for q in p.model.parameters()):,} parameters; "
                 f"device {self.device}, {self.dist.world} process(es); "
                 f"{len(p.data.train_labels)} train / {len(p.data.val_labels)} val images")

    def release(self) -> None:
        """Give output.dir back to other runs (done when fit ends)."""
        if self.lock is not None:
            self.lock.release()

    # ----- checkpoints --------------------------------------------------------------------------------
    def _training_state(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                 "scaler": self.scaler.state_dict(),
                 "epoch": self.epoch, "step": self.step, "best_acc": self.best_acc, "bad_epochs": self.bad_epochs,
                 "history": self.history, "running": dict(self.running),
                 "gen_state": self.gen.get_state(), "torch_rng": torch.get_rng_state()}
        if self.cuda:
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _checkpoint(self, metrics: dict, training: dict | None = None) -> dict:
        return make_checkpoint(self.model_without_ddp, EMOTIONS, config=self.cfg, epoch=self.epoch, metrics=metrics,
                               training=training)

    def _save_last(self) -> None:
        if self.dist.main:
            metrics = self.history[-1] if self.history else {}
            save_output(self.out / "last.pt", self._checkpoint(metrics, self._training_state()))

    def _resume(self) -> None:
        path, m = self.out / "last.pt", self.cfg["model"]
        ckpt = read_checkpoint(path)
        if "training" not in ckpt:
            raise CheckpointError(f"{path} has no training state to resume from (a best.pt or epoch file?)")
        if ckpt["arch"] != m["name"] or ckpt["arch_args"] != m["args"] or state_dict_mismatch(
                self.model_without_ddp, ckpt["model"]):
            raise CheckpointError(f"{path} holds {ckpt['arch']} {ckpt['arch_args']}, the config asks for "
                                  f"{m['name']} {m['args']}")
        changed = check_resume(ckpt.get("config", {}), self.cfg, path)
        self.model_without_ddp.load_state_dict(ckpt["model"])
        st = ckpt["training"]
        try:  # another optimizer or schedule in the config, or a damaged state
            self.optimizer.load_state_dict(st["optimizer"])
            if self.scheduler is not None and st["scheduler"] is not None:
                self.scheduler.load_state_dict(st["scheduler"])
            self.scaler.load_state_dict(st["scaler"])
            self.epoch, self.step = st["epoch"], st["step"]
            self.best_acc, self.bad_epochs = st["best_acc"], st["bad_epochs"]
            self.history, self.running = st["history"], st["running"]
            self.gen.set_state(st["gen_state"])  # mid-epoch, augmentation continues its stream (see _train_epoch)
            torch.set_rng_state(st["torch_rng"])
            if self.cuda and "cuda_rng" in st:
                torch.cuda.set_rng_state(st["cuda_rng"], self.device)
            self.finished = finished(st, self.cfg)
            self.resumed = (st, changed)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise CheckpointError(f"{path}: its training state does not fit the configured optimizer and schedule "
                                  f"({exc.__class__.__name__}: {first_line})") from None
        log.info(resume_message(path, st, self.cfg))

    # ----- the loop -----------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to ``train.epochs`` (or early stop). Returns the best epoch's metrics; raises
        KeyboardInterrupt after saving a resumable checkpoint when stopped by Ctrl-C. A resumed run that has
        already finished returns at once."""
        try:
            if self.dist.main and not self.finished:
                if self.resumed is None or not (self.out / "config.yaml").is_file():  # the first run's record
                    save_output(self.out / "config.yaml", yaml.safe_dump(self.cfg, sort_keys=False))
                if self.resumed is not None:
                    save_output(self.out / "resume_history.yaml", record_resume(self.out, *self.resumed))
                if self.cfg["output"]["tensorboard"]:
                    from torch.utils.tensorboard import SummaryWriter
                    self.writer = SummaryWriter(str(self.out / "tensorboard"))
            with StopFlag() as stop:
                while not self.finished and self.epoch < self.cfg["train"]["epochs"]:
                    if not self._train_epoch(stop):
                        self._save_last()
                        log.info(f"interrupted at epoch {self.epoch + 1}, batch {self.step}; saved "
                                 f"{self.out / 'last.pt'}; continue with --resume")
                        raise KeyboardInterrupt
                    if self._end_epoch():
                        break
        finally:
            self.release()
            if self.writer is not None:
                self.writer.close()
            if self.dist.world > 1 and torch_dist.is_initialized():
                torch_dist.destroy_process_group()
        best = max(self.history, key=lambda h: h["val_acc"]) if self.history else {}
        log.info(f"done: best val acc {best.get('val_acc', float('nan')):.4f} at epoch {best.get('epoch')}; "
                 f"checkpoints in {self.out}")
        return best

    def _train_epoch(self, stop: StopFlag) -> bool:
        """Run (the rest of) one epoch. False when stopped early by Ctrl-C."""
        bs = self.cfg["train"]["batch_size"]
        self.sampler.set_epoch(self.epoch)
        order = torch.tensor(list(self.sampler))
        if self.step == 0:  # a new epoch; one resumed mid-epoch continues the generator _resume restored
            self.gen.manual_seed((self.cfg["seed"] * 1_000_003 + self.epoch * 1_009 + self.dist.rank) % (2**63))
            self.running = {"loss": 0.0, "correct": 0, "seen": 0}
        self.model.train()
        start = time.time()
        bar = tqdm(total=self.steps_per_epoch, initial=self.step, desc=f"epoch {self.epoch + 1}/"
                   f"{self.cfg['train']['epochs']}", disable=not self.dist.main, unit="batch",
                   mininterval=1 if sys.stderr.isatty() else 60, leave=False)
        while self.step < self.steps_per_epoch:
            if any_rank(stop.set, self.dist, self.device):
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
        faces = self.data.train_images[idx].to(self.device, non_blocking=True)
        y = self.train_targets[idx].to(self.device, non_blocking=True)
        x, partner, lam = self.augment(faces, self.gen)
        if self.cfg["train"]["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.writer is not None and self.epoch == 0 and self.step == 0:
            self.writer.add_images("train/augmented_batch", self.model_without_ddp.preprocessing.denormalize(x[:64]))
        amp = self.amp_dtype is not None
        with torch.autocast(self.device.type, dtype=self.amp_dtype if amp else torch.float32, enabled=amp):
            soft = self._soft_targets(idx, x, partner, lam)
            logits = self.model(x)
            loss = self.criterion(logits, y, soft, partner, lam)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if steps_per_batch(self.scheduler):
            self.scheduler.step()
        if not math.isfinite(loss.item()):  # the weights are lost now; last.pt holds the previous epoch's end
            raise CommandError(f"the loss is {loss.item()} at epoch {self.epoch + 1}, batch {self.step + 1}: the "
                               "training diverged; lower optim.lr")
        if partner is not None and lam < 0.5:  # a mixed image counts as its dominant image's class
            y = y[partner]
        return loss.item(), int((logits.argmax(1) == y).sum())

    def _soft_targets(self, idx: torch.Tensor, x: torch.Tensor, partner: torch.Tensor | None,
                      lam: float) -> torch.Tensor | None:
        """The teacher's probabilities for this batch as fed: run on it (online), or its cached per-image
        predictions mixed as mixup mixed the images; None without a teacher."""
        if self.teacher is not None:
            return online_targets(self.teacher, x)
        if self.teacher_probs is None:
            return None
        return mix_targets(self.teacher_probs[idx].to(self.device), partner, lam)

    def _end_epoch(self) -> bool:
        """Validate, log, step the scheduler, save checkpoints. True when early stopping fires."""
        train = sum_across_processes([self.running["loss"], self.running["correct"], self.running["seen"]],
                                     self.dist, self.device)
        val_loss, report = validate(self.model_without_ddp, self.data, self.criterion.label_loss,
                                    self.cfg["train"]["eval_batch_size"], self.device)
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
        step_after_epoch(self.scheduler, metrics["val_acc"])
        log_epoch(metrics, self.cfg["train"]["epochs"], improved, self.writer, lrs, report)
        self.epoch, self.step = self.epoch + 1, 0
        if self.dist.main:
            if improved or self.cfg["output"]["keep_epochs"]:
                weights = self._checkpoint(metrics)
                if improved:
                    save_output(self.out / "best.pt", weights)
                if self.cfg["output"]["keep_epochs"]:
                    save_output(self.out / f"epoch_{metrics['epoch']:03d}.pt", weights)
            self._save_last()
        patience = self.cfg["train"]["early_stopping"]
        if patience and self.bad_epochs >= patience:
            log.info(f"early stopping: no better val accuracy for {patience} epochs")
            return True
        return False


"""What the trainer needs around the loop (as torchvision's references/classification/utils.py): the process's
set-up (threads, torchrun, device, run folder, log, seeds), the data, starting weights, Ctrl-C, TensorBoard."""
from __future__ import annotations

import logging
import os
import random
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn as nn

from fercore.atomic import atomic_path, describe
from fercore.classes import EMOTIONS
from fercore.cli import CommandError
from fercore.metrics import classification_report, confusion_figure
from models.checkpoint import CheckpointError, atomic_save, read_checkpoint, state_dict_mismatch
from models.inference import predict
from training.data import load_split, stratified_subset
from training.ferplus import face_mask
from training.errors import ConfigError, DataError
from training.rundir import RunLock, check_run_folder, claim_run_folder

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

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
        raise ConfigError("train.device=cuda but CUDA is not available; use train.device=auto or cpu")
    if pref in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def setup_logging(out_dir: Path, main: bool) -> None:
    """Console on every process (warnings only off rank 0), and ``train.log`` from rank 0."""
    log.handlers.clear()
    log.setLevel(logging.INFO if main else logging.WARNING)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    log.addHandler(console)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(out_dir / "train.log", delay=True)  # made by the first message, not before
        file.setFormatter(fmt)
        log.addHandler(file)


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


def any_rank(flag: bool, dist: Dist, device: torch.device) -> bool:
    """``flag`` of this process or of any other, so every process leaves the loop at the same batch."""
    if dist.world == 1:
        return flag
    total = torch.tensor([float(flag)], device=device)
    torch_dist.all_reduce(total)
    return bool(total.item())


def sum_across_processes(values: list[float], dist: Dist, device: torch.device) -> torch.Tensor:
    total = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.world > 1:
        torch_dist.all_reduce(total)
    return total


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


def save_output(path: Path, obj: dict | str) -> None:
    """A checkpoint (or text) written atomically; a full disk or a read-only folder stops the run in one line
    (CommandError), keeping the files written before."""
    try:
        if isinstance(obj, str):
            with atomic_path(path) as tmp:
                tmp.write_text(obj)
        else:
            atomic_save(obj, path)
    except OSError as exc:
        then = "; make room and continue with --resume" if (path.parent / "last.pt").is_file() else ""
        raise CommandError(describe(path, exc) + then) from None


def validate(model: nn.Module, data: Data, label_loss: nn.Module, batch_size: int,
             device: torch.device) -> tuple[float, dict]:
    """The loss (``label_loss``) and classification report of ``model`` on the val split."""
    probs = predict(model, data.val_images, model.preprocessing, batch_size, device)
    # log-probabilities are valid logits (softmax(log p) = p), so the training loss applies to them.
    log_probs = torch.log(torch.from_numpy(probs).clamp_min(1e-8)).to(device)
    val_loss = float(label_loss(log_probs, torch.from_numpy(data.val_labels).to(device)))
    return val_loss, classification_report(data.val_labels, probs.argmax(1), EMOTIONS)


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


def log_epoch(metrics: dict, epochs: int, improved: bool, writer: SummaryWriter | None, lrs: list[float],
              report: dict) -> None:
    """The epoch's line in the log and, with a ``writer``, its scalars, learning rates and confusion matrix."""
    log.info(f"epoch {metrics['epoch']:3d}/{epochs}  "
             f"train loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.4f} | "
             f"val loss {metrics['val_loss']:.4f} acc {metrics['val_acc']:.4f} macro-F1 "
             f"{metrics['val_macro_f1']:.4f} | lr {metrics['lr']:.2e} | {metrics['epoch_seconds']:.0f}s"
             + ("  * best" if improved else ""))
    if writer is None:
        return
    e = metrics["epoch"]
    for key in ("train_loss", "val_loss"):
        writer.add_scalar(f"loss/{key[:-5]}", metrics[key], e)
    for key in ("train_acc", "val_acc"):
        writer.add_scalar(f"accuracy/{key[:-4]}", metrics[key], e)
    writer.add_scalar("macro_f1/val", metrics["val_macro_f1"], e)
    for i, lr in enumerate(lrs):
        writer.add_scalar(f"lr/group{i}", lr, e)
    writer.add_figure("val/confusion_matrix", confusion_figure(report["confusion_matrix"], EMOTIONS, f"epoch {e}"), e)
    writer.flush()

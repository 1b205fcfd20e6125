"""A training's log: the ``training`` logger (console on every process, ``train.log`` from rank 0) and the line,
TensorBoard scalars and confusion matrix each epoch ends with (training.curves reads the line back)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fercore.classes import EMOTIONS
from fercore.metrics import confusion_figure

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

log = logging.getLogger("training")


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

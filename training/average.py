"""Stochastic weight averaging (SWA) after the fact: average the weights of several epochs of one run,
recompute the BatchNorm statistics for the averaged weights, and score the result on val.

Averaging the epochs of a constant-learning-rate run lands nearer the middle of the flat region the
weights wander in than any single epoch does. BatchNorm running statistics are not linear in the
weights, so they are measured anew with one pass over the (unaugmented) training images.

    python -m training.run --config training/configs/fast/stage5.yaml   # keeps epoch_NNN.pt
    python -m training.average runs/fast/stage5/epoch_*.pt --out runs/fast/stage5/swa.pt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator

from fercore.cli import interruptible_imports

with interruptible_imports():
    import numpy as np
    import torch
    import torch.nn as nn
    from torch.optim.swa_utils import update_bn
    from tqdm import tqdm

    from fercore import cli
    from fercore.metrics import classification_report
    from models.inference import predict
    from models.checkpoint import (CheckpointError, atomic_save, data_to_model_order, make_checkpoint,
                                   model_from_checkpoint, read_checkpoint)
    from models.outputs import check_model_output
    from models.preprocessing import Preprocessing
    from training.data import DataError, load_split
    from fercore.atomic import describe

USER_ERRORS = (CheckpointError, DataError)
SAME = ("arch", "arch_args", "classes", "preprocessing")  # what every averaged checkpoint must share


def average_checkpoints(ckpts: list[dict], names: list[str | Path]) -> dict:
    """One checkpoint whose weights are the mean of ``ckpts``' (integer buffers from the last one); ``names``
    (their files) are for the errors. Its BatchNorm statistics are averaged too, which is only a starting
    point: see recompute_batchnorm."""
    if len(ckpts) < 2:
        raise CheckpointError(f"averaging needs at least two checkpoints, got {len(ckpts)}")
    first = ckpts[0]
    for name, ckpt in zip(names[1:], ckpts[1:]):
        for key in SAME:
            if ckpt[key] != first[key]:
                raise CheckpointError(f"{name} differs from {names[0]} in {key}: {ckpt[key]} vs {first[key]}")
    averaged = {}
    for name, last in ckpts[-1]["model"].items():
        if last.is_floating_point():
            averaged[name] = torch.stack([c["model"][name].double() for c in ckpts]).mean(0).to(last.dtype)
        else:
            averaged[name] = last.clone()
    out = dict(ckpts[-1])
    out["model"] = averaged
    out.pop("training", None)
    out.pop("weights_sha256", None)  # the last epoch's; saving records the averaged weights' own
    return out


def _batches(images: np.ndarray, prep: Preprocessing, batch_size: int, device: str) -> Iterator[torch.Tensor]:
    faces = torch.as_tensor(images)
    for start in tqdm(range(0, len(faces), batch_size), desc="batchnorm", unit="batch"):
        yield prep.normalize(faces[start:start + batch_size]).to(device)


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, images: np.ndarray, batch_size: int = 256, device: str = "cpu") -> None:
    """Replace the BatchNorm running statistics with their exact average over ``images`` (uint8 faces)."""
    update_bn(_batches(images, model.preprocessing, batch_size, device), model, device=torch.device(device))
    model.eval()


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("training.average", __doc__)
    g = ap.add_argument_group("averaging")
    g.add_argument("checkpoints", nargs="+", help="two or more checkpoints of one model (epoch_NNN.pt)")
    g.add_argument("--out", required=True, help="where to write the averaged checkpoint")
    data = cli.add_data_args(ap)
    data.add_argument("--train-split", default="train",
                      help="images the BatchNorm statistics are measured on (default train)")
    data.add_argument("--val-split", default="val", help="images the averaged model is scored on (default val)")
    return ap


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    device = cli.resolve_device(args.device, torch.cuda.device_count())
    check_model_output(args.out, ".pt", inputs=args.checkpoints, what="--out")
    inputs = [read_checkpoint(p) for p in args.checkpoints]
    ckpt = average_checkpoints(inputs, args.checkpoints)
    order = data_to_model_order(ckpt["classes"], str(args.checkpoints[-1]))
    train_x, _ = load_split(args.data, args.train_split, args.cache_dir)
    val_x, val_y = load_split(args.data, args.val_split, args.cache_dir)
    model = model_from_checkpoint(ckpt).to(device)
    recompute_batchnorm(model, train_x, args.batch_size, device)
    probs = predict(model, val_x, model.preprocessing, args.batch_size, device)
    report = classification_report(order[val_y], probs.argmax(1), ckpt["classes"])
    metrics = {"val_acc": report["accuracy"], "val_macro_f1": report["macro_f1"],
               "averaged_from": [Path(p).name for p in args.checkpoints]}
    for path, single_ckpt in zip(args.checkpoints, inputs):
        single = single_ckpt.get("metrics", {}).get("val_acc")
        print(f"  {Path(path).name}: val acc {single:.4f}" if single is not None else f"  {Path(path).name}")
    print(f"average of {len(args.checkpoints)}: val acc {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}")
    try:
        atomic_save(make_checkpoint(model, ckpt["classes"], config=ckpt["config"],
                                    epoch=ckpt["epoch"], metrics=metrics), args.out)
    except OSError as exc:
        raise cli.CommandError(describe(args.out, exc)) from None
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Average as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())

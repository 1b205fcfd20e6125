"""Calibrate a checkpoint's confidence: fit the temperature that makes its probabilities honest on a held-out
split (val), store it in the checkpoint, and draw the reliability diagram before and after.

    python -m training.calibrate weights/default.pt                    # in place; re-exports default.onnx
    python -m training.calibrate runs/x/best.pt --out calibrated.pt

Every entry point divides the logits by the stored temperature before the softmax, so the confidence the app
prints and the "uncertain" threshold it applies mean what they say. Predictions (argmax) do not change.
The figures are measured on the split the temperature was fitted on, so they are optimistic: the command
also reports a two-fold estimate (fit on one half, measure on the other).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fercore.cli import interruptible_imports

with interruptible_imports():
    import numpy as np
    import torch

    from fercore import cli
    from fercore.calibration import (before_after, fit_temperature, log_probs, reliability, save_reliability_png,
                                     softmax)
    from models.checkpoint import CheckpointError, atomic_save, data_to_model_order, load_model, read_checkpoint
    from models.inference import predict
    from models.outputs import check_model_output
    from training.data import DataError, load_split
    from fercore.atomic import describe
    from fercore.paths import eval_folder
    from models.onnx_export import refresh_export
    from training.outputs import check_writable

USER_ERRORS = (CheckpointError, DataError)
# Below this many images a fitted temperature (one number, but set by the few most confident mistakes) and the
# calibration errors measured with 15 bins vary too much from one sample to the next to be worth storing.
MIN_IMAGES = 500


def split_logits(model: torch.nn.Module, images: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """Logits up to a constant per row (log-probabilities at temperature 1): all temperature scaling needs."""
    model.temperature = 1.0
    probs = predict(model.to(device), images, model.preprocessing, batch_size, device, progress=True)
    return log_probs(probs)


def calibration_report(logits: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """The fitted temperature, NLL and ECE before and after, and a two-fold estimate of ECE after."""
    t = fit_temperature(logits, labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = np.array_split(order, 2)
    held_out = []
    for fit_half, test_half in (halves, halves[::-1]):
        t_half = fit_temperature(logits[fit_half], labels[fit_half])
        held_out.append(reliability(softmax(logits[test_half], t_half), labels[test_half])["ece"])
    return {"temperature": t, **before_after(logits, np.asarray(logits, dtype=np.float64) / t, labels),
            "ece_after_two_fold": float(np.mean(held_out))}


def check_outputs(out: Path, diagram: Path) -> None:
    """CommandError before any work unless every output can be written: the checkpoint (a .pt file holding a
    checkpoint, or nothing yet), the diagram (a .png file) and the export beside the checkpoint where there is one
    (refreshed after it)."""
    check_model_output(out, ".pt", what="--out")
    if diagram.suffix.lower() != ".png":
        raise cli.CommandError(f"--diagram must be a .png file, got {diagram}")
    check_writable(diagram, what="--diagram")
    if (onnx := out.with_suffix(".onnx")).exists():
        check_model_output(onnx, ".onnx", what="the export beside --out")


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("training.calibrate", __doc__)
    g = ap.add_argument_group("calibration")
    g.add_argument("checkpoint", type=Path, help="a checkpoint written by training.run (e.g. weights/default.pt)")
    g.add_argument("--out", type=Path, default=None,
                   help="where to write the calibrated checkpoint (default: in place, re-exporting a .onnx beside it)")
    g.add_argument("--diagram", type=Path, default=None,
                   help="reliability diagram PNG (default: eval/<name>/reliability_<split>.png beside the "
                        "output)")
    data = cli.add_data_args(ap)
    data.add_argument("--split", default="val", help="the held-out split to fit on (default val; never test)")
    return ap


def command(argv: list[str] | None = None) -> int:
    ap = get_parser()
    args = ap.parse_args(argv)
    if args.split.lower() in ("test", "privatetest"):  # the split's name, and the csv's Usage for it
        ap.error(f"argument --split: {args.split}: the test split is never used to fit (it is kept to measure the "
                 "calibrated model on); use val")
    device = cli.resolve_device(args.device, torch.cuda.device_count())
    out = args.out or args.checkpoint
    diagram = args.diagram or eval_folder(out) / f"reliability_{args.split}.png"
    check_outputs(out, diagram)
    ckpt = read_checkpoint(args.checkpoint)
    model, _ = load_model(args.checkpoint)
    order = data_to_model_order(ckpt["classes"], str(args.checkpoint))
    images, labels = load_split(args.data, args.split, args.cache_dir)
    labels = order[labels]
    if len(labels) < MIN_IMAGES:
        print(f"warning: {args.split} has {len(labels)} images; a temperature fitted on fewer than {MIN_IMAGES} is "
              "unreliable, and so are the calibration errors below", file=sys.stderr)
    report = calibration_report(split_logits(model, images, args.batch_size, device), labels)
    ckpt["temperature"] = report["temperature"]
    ckpt.setdefault("metrics", {})["calibration"] = {
        "split": args.split, "temperature": report["temperature"], "ece_before": report["before"]["ece"],
        "ece_after": report["after"]["ece"], "ece_after_two_fold": report["ece_after_two_fold"],
        "nll_before": report["nll_before"], "nll_after": report["nll_after"]}
    path = out
    try:
        atomic_save(ckpt, out)
        path = diagram
        save_reliability_png(report["before"], report["after"], diagram,
                             title=f"{out.name} on {args.split}: temperature {report['temperature']:.3f}")
        path = out.with_suffix(".onnx")
        onnx = refresh_export(out)
    except OSError as exc:
        raise cli.CommandError(describe(path, exc)) from None
    print(f"temperature {report['temperature']:.4f} fitted on {args.split} ({len(labels)} images)")
    print(f"NLL {report['nll_before']:.4f} -> {report['nll_after']:.4f}; expected calibration error "
          f"{report['before']['ece']:.2%} -> {report['after']['ece']:.2%} on the images it was fitted on "
          f"(optimistic); {report['ece_after_two_fold']:.2%} when fitted on one half and measured on the other "
          "(what to expect on new faces)")
    print(f"wrote {out} and {diagram}" + (f"; re-exported {onnx}" if onnx is not None else ""))
    if "readability" in ckpt:
        print(f"note: its readability limits were measured at the temperature before; re-measure them with "
              f"python -m tools.readability_curves --checkpoint {out} --store")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Calibrate as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())

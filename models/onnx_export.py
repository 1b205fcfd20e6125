"""Export a checkpoint to ONNX for ONNX Runtime, which runs the small CNNs faster on a CPU.

    python -m models.onnx_export weights/default.pt            # writes weights/default.onnx
    python -m models.onnx_export a.pt b.pt -o ensemble.onnx    # an ensemble (models.ensemble) as one graph

The ONNX file carries the checkpoint's description (architecture, classes, preprocessing, temperature,
readability limits) in its metadata, so it is as self-describing as the checkpoint it came from; an ensemble's
records each member (its file, SHA-256, architecture, temperature). The output must be a .onnx file other than
the checkpoints, so an export never replaces its input.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from fercore import cli
from fercore.atomic import atomic_path
from fercore.paths import one_or_more
from models.errors import CheckpointError
from models.outputs import check_model_output, write_model
from models.onnx_runtime import checkpoint_digest, sealed_model

# torch and models.checkpoint load inside export_onnx: the command's Ctrl-C then ends in fercore.cli.run.


def check_output(checkpoint: str | Path | Sequence[str | Path], output: str | Path) -> Path:
    """``output`` if an export may be written there: a .onnx path that is none of the checkpoints, nor a folder or
    a device (models.outputs; CommandError otherwise). A file there that is not an export is replaced (the app's
    cache re-exports a damaged one); the command refuses it (check_command_output)."""
    return check_model_output(output, ".onnx", inputs=one_or_more(checkpoint), keep_others=False)


def check_command_output(args: argparse.Namespace) -> None:
    """The command's output checked before the export (CommandError): as check_output, and a file there must be
    an ONNX export (models.outputs), which it replaces; a user's file of another kind is kept."""
    if args.output or len(args.checkpoint) == 1:
        check_model_output(args.output or Path(args.checkpoint[0]).with_suffix(".onnx"), ".onnx",
                           inputs=args.checkpoint)


def export_onnx(checkpoint: str | Path | Sequence[str | Path], output: str | Path | None = None,
                opset: int = 17) -> Path:
    """Export a checkpoint, or the ensemble of several (models.ensemble: one graph whose softmax is the mean of
    the members' calibrated probabilities), to ``output`` (for one checkpoint by default its path with .onnx)."""
    import onnx
    import torch

    from models.ensemble import load_ensemble

    paths = [Path(p) for p in one_or_more(checkpoint)]
    if not paths:
        raise cli.CommandError("no checkpoint to export")
    if len(paths) > 1 and not output:
        raise cli.CommandError("an ensemble's export needs an output file (-o FILE.onnx)")
    output = check_output(paths, output if output else paths[0].with_suffix(".onnx"))
    model, description = load_ensemble(paths)
    size = model.preprocessing.size
    if len(paths) == 1:
        meta = {key: description[key] for key in ("arch", "arch_args", "classes", "preprocessing", "epoch",
                                                  "metrics")}
        meta["temperature"] = model.temperature
        if "readability" in description:
            meta["readability"] = description["readability"]
        meta["checkpoint_sha256"] = checkpoint_digest(paths[0])  # the app tells a stale export from a fresh one
    else:
        meta = dict(description)
        meta["members"] = [{**member, "sha256": checkpoint_digest(path)}
                           for member, path in zip(description["members"], paths)]

    with atomic_path(output, devices=False) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter announces its successor
        torch.onnx.export(model, (torch.zeros(1, 1, size, size),), str(tmp), input_names=["faces"],
                          output_names=["logits"], dynamic_axes={"faces": {0: "n"}, "logits": {0: "n"}},
                          opset_version=opset, dynamo=False)
        Path(tmp).write_bytes(sealed_model(onnx.load(str(tmp)), meta))
    return output


def refresh_export(checkpoint: str | Path) -> Path | None:
    """Re-export the .onnx beside a checkpoint that was just rewritten (calibrated, given readability limits), and
    re-quantize the int8 export beside it (models.quantize), so the app serves them instead of cached exports; the
    .onnx written, None when there is no .onnx beside it. Without calibration faces the int8 export is left stale
    (the app refuses it) with a warning."""
    from models.quantize import CalibrationError, int8_path, quantize_checkpoint

    onnx = Path(checkpoint).with_suffix(".onnx")
    written = export_onnx(checkpoint, onnx) if onnx.is_file() else None
    if int8_path(checkpoint).is_file():
        try:
            quantize_checkpoint(checkpoint, int8_path(checkpoint))
        except CalibrationError as exc:
            warnings.warn(f"{int8_path(checkpoint)} is now stale ({exc}); re-make it with python -m models.quantize",
                          RuntimeWarning, stacklevel=2)
    return written


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("models.onnx_export", __doc__)
    g = ap.add_argument_group("export")
    g.add_argument("checkpoint", nargs="+",
                   help="a checkpoint written by training (e.g. weights/default.pt); several make one ensemble "
                        "(their probabilities averaged; needs -o)")
    g.add_argument("-o", "--output", help="the .onnx file to write (default for one checkpoint: its path with .onnx)")
    return ap


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    check_command_output(args)
    return write_model(lambda: export_onnx(args.checkpoint, args.output),
                       args.output or Path(args.checkpoint[0]).with_suffix(".onnx"))


def main(argv: list[str] | None = None) -> int:
    """Export as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, (CheckpointError,))


if __name__ == "__main__":
    sys.exit(main())

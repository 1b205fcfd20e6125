"""Export a checkpoint to ONNX for ONNX Runtime, which runs the small CNNs faster on a CPU.

    python -m models.onnx_export weights/default.pt            # writes weights/default.onnx

The ONNX file carries the checkpoint's description (architecture, classes, preprocessing) in its
metadata, so it is as self-describing as the checkpoint it came from. The output must be a .onnx file other
than the checkpoint, so an export never replaces its input.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from fercore import cli
from fercore.atomic import atomic_path
from models.errors import CheckpointError
from models.onnx_runtime import METADATA_KEY, checkpoint_digest

# torch and models.checkpoint load inside export_onnx: the command's Ctrl-C then ends in fercore.cli.run.


def check_output(checkpoint: str | Path, output: str | Path) -> Path:
    """``output`` if an export may be written there: a .onnx path that is neither the checkpoint nor a folder
    (CommandError otherwise)."""
    output = Path(output)
    if output.suffix.lower() != ".onnx":
        raise cli.CommandError(f"the output must be a .onnx file, got {output}")
    if output.is_dir():
        raise cli.CommandError(f"the output {output} is a folder; give a .onnx file")
    same = output.resolve() == Path(checkpoint).resolve() or (
        output.exists() and Path(checkpoint).exists() and output.samefile(checkpoint))  # a link to it, too
    if same:
        raise cli.CommandError(f"the output {output} is the checkpoint itself; give another .onnx file")
    return output


def export_onnx(checkpoint: str | Path, output: str | Path | None = None, opset: int = 17) -> Path:
    import onnx
    import torch

    from models.checkpoint import load_model

    output = check_output(checkpoint, output if output else Path(checkpoint).with_suffix(".onnx"))
    model, ckpt = load_model(checkpoint)
    size = model.preprocessing.size
    meta = {key: ckpt[key] for key in ("arch", "arch_args", "classes", "preprocessing", "epoch", "metrics")}
    meta["temperature"] = model.temperature
    meta["checkpoint_sha256"] = checkpoint_digest(checkpoint)  # lets the app tell a stale export from a fresh one

    with atomic_path(output) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter announces its successor
        torch.onnx.export(model, (torch.zeros(1, 1, size, size),), str(tmp), input_names=["faces"],
                          output_names=["logits"], dynamic_axes={"faces": {0: "n"}, "logits": {0: "n"}},
                          opset_version=opset, dynamo=False)
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta)
        onnx.save(proto, str(tmp))
    return output


def command(argv: list[str] | None) -> int:
    ap = cli.parser("models.onnx_export", __doc__)
    g = ap.add_argument_group("export")
    g.add_argument("checkpoint", help="a checkpoint written by training (e.g. weights/default.pt)")
    g.add_argument("-o", "--output", help="the .onnx file to write (default: the checkpoint's path with .onnx)")
    args = ap.parse_args(argv)
    try:
        written = export_onnx(args.checkpoint, args.output)
    except OSError as exc:  # a read-only folder, a full disk: the atomic writer has left nothing behind
        raise cli.CommandError(f"cannot write {args.output or Path(args.checkpoint).with_suffix('.onnx')}: "
                               f"{exc.strerror or exc}") from exc
    print(f"wrote {written}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Export as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, (CheckpointError,))


if __name__ == "__main__":
    sys.exit(main())

"""Export a checkpoint to ONNX for ONNX Runtime, which runs the small CNNs faster on a CPU.

    python -m models.onnx_export weights/default.pt            # writes weights/default.onnx

The ONNX file carries the checkpoint's description (architecture, classes, preprocessing) in its
metadata, so it is as self-describing as the checkpoint it came from.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import torch

from fercore import cli
from fercore.atomic import atomic_path
from models.checkpoint import CheckpointError, load_model
from models.onnx_runtime import METADATA_KEY, checkpoint_digest


def export_onnx(checkpoint: str | Path, output: str | Path | None = None, opset: int = 17) -> Path:
    model, ckpt = load_model(checkpoint)
    output = Path(output) if output else Path(checkpoint).with_suffix(".onnx")
    size = model.preprocessing.size
    meta = {key: ckpt[key] for key in ("arch", "arch_args", "classes", "preprocessing", "epoch", "metrics")}
    meta["temperature"] = model.temperature
    meta["checkpoint_sha256"] = checkpoint_digest(checkpoint)  # lets the app tell a stale export from a fresh one
    import onnx

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
    print(f"wrote {export_onnx(args.checkpoint, args.output)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Export as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, (CheckpointError,))


if __name__ == "__main__":
    sys.exit(main())

"""Static int8 quantization of an exported model with ONNX Runtime: QDQ format, per-channel int8 weights,
uint8 activations whose ranges are calibrated on FER-2013 training faces preprocessed as the model's own.

    python -m models.quantize weights/default.pt                       # writes weights/default.int8.onnx
    python -m models.quantize a.pt b.pt -o ensemble.int8.onnx           # an ensemble (models.ensemble) as one graph
    python -m models.quantize weights/fast.pt --method entropy -o /tmp/fast.entropy.int8.onnx

The int8 file carries the fp32 export's metadata (the checkpoint's SHA-256, classes, preprocessing, temperature,
readability limits) plus ``precision: int8`` and how it was calibrated, so the app tells a stale or foreign
int8 export from a fresh one as it does for fp32. Calibration is deterministic: the same fixed-seed sample of
training faces on every machine, so a cached quantization is the shipped one.

Weights use 7 bits (``reduce_range``): x86 CPUs without VNNI multiply uint8 by int8 in 16-bit sums that
saturate with full 8-bit weights. With them the shipped models lose at most 0.11 points (weights/README.md, "int8").
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from fercore import cli
from fercore.atomic import atomic_path
from fercore.classes import IMAGE_SUFFIXES
from fercore.paths import SHARED_FER, one_or_more
from models.errors import CheckpointError
from models.onnx_runtime import METADATA_KEY, sealed_model
from models.outputs import write_model
from models.preprocessing import Preprocessing, faces_to_input

METHODS = ("minmax", "entropy", "percentile")
DEFAULT_METHOD = "minmax"
CALIBRATION_FACES = 3072  # a fixed sample of the training split: ranges settle well before this
CALIBRATION_SEED = 0
BATCH = 256  # faces per calibration batch: histograms are collected batch by batch, so memory stays small
OP_TYPES = ["Conv", "Gemm", "MatMul", "MaxPool", "Relu"]  # an ensemble's averaging head stays fp32


class CalibrationError(Exception):
    """No calibration faces: the FER-2013 training folder is missing or holds too few images."""


def int8_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's int8 export sits beside it: weights/default.pt -> weights/default.int8.onnx."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.int8.onnx")


def calibration_faces(data: str | Path = SHARED_FER, n: int = CALIBRATION_FACES,
                      seed: int = CALIBRATION_SEED) -> list[np.ndarray]:
    """``n`` grayscale training faces (uint8 arrays) drawn with ``seed`` from ``data``/train/<emotion>/, the
    same on every machine that has the same folder (files are listed in sorted order before the draw)."""
    import cv2

    train = Path(data).expanduser() / "train"
    files = sorted(p for p in train.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES) if train.is_dir() else []
    if len(files) < n:
        raise CalibrationError(f"int8 calibration needs {n} FER-2013 training faces under {train}/<emotion>/, "
                               f"found {len(files)}")
    picked = np.sort(np.random.default_rng(seed).choice(len(files), n, replace=False))
    faces = [cv2.imread(str(files[i]), cv2.IMREAD_GRAYSCALE) for i in picked]
    unreadable = [str(files[i]) for i, face in zip(picked, faces) if face is None]
    if unreadable:
        raise CalibrationError(f"cannot read the calibration face {unreadable[0]}")
    return faces


def _reader(batches: list[np.ndarray]):
    """An ONNX Runtime calibration data reader over ready batches, with the range selection its strided
    calibration uses (one range of batches per collect, so histograms never hold every activation at once)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.set_range(0, len(batches))

        def __len__(self) -> int:
            return len(batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._next = iter(batches[start_index:end_index])

        def get_next(self) -> dict | None:
            batch = next(self._next, None)
            return None if batch is None else {"faces": batch}

    return Reader()


@contextmanager
def _advice_held_back() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice to pre-process the model first ('Please consider ...') on the root
    logger, which would reach the stderr of every program that quantizes a model on first use; it is dropped."""
    def keep(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()
    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def quantize_onnx(fp32: str | Path, output: str | Path, faces: Sequence[np.ndarray], method: str = DEFAULT_METHOD,
                  exclude: Sequence[str] = ()) -> Path:
    """Quantize the fp32 export ``fp32`` into ``output`` (QDQ, per-channel weights), its activation ranges
    calibrated on ``faces`` (grayscale crops, preprocessed as the export's metadata says) with ``method``;
    the nodes named in ``exclude`` stay fp32. The output carries the export's metadata with ``precision: int8``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    proto = onnx.load(str(fp32))
    props = {entry.key: entry.value for entry in proto.metadata_props}
    if METADATA_KEY not in props:
        raise CheckpointError(f"{fp32} is not an ONNX model exported by this project (no {METADATA_KEY} metadata)")
    meta = json.loads(props[METADATA_KEY])
    if meta.get("precision", "fp32") != "fp32":
        raise CheckpointError(f"{fp32} is already quantized ({meta['precision']}); quantize its fp32 export")
    names = [node.name for node in proto.graph.node]
    if unknown := [name for name in exclude if name not in names]:  # ONNX Runtime would ignore them
        quantized = [node.name for node in proto.graph.node if node.op_type in OP_TYPES]
        raise cli.CommandError(f"--exclude: no node named {unknown[0]!r} in the model; its nodes that are quantized: "
                               f"{', '.join(quantized[:12])}" + (" ..." if len(quantized) > 12 else ""))
    x = faces_to_input(list(faces), Preprocessing.from_dict(meta["preprocessing"]))
    batches = [x[i:i + BATCH] for i in range(0, len(x), BATCH)]
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    meta.update(precision="int8", quantization={
        "format": "QDQ", "weights": "int8 per channel, 7-bit range", "activations": "uint8",
        "calibration": method, "calibration_faces": len(x), "excluded_nodes": list(exclude)})
    output = Path(output)
    with atomic_path(output, devices=False) as tmp, _advice_held_back():
        quantize_static(str(fp32), str(tmp), _reader(batches), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=OP_TYPES, nodes_to_exclude=list(exclude) or None,
                        calibrate_method=calibrate, extra_options={"CalibStridedMinMax": 1})
        meta = {k: v for k, v in meta.items() if k not in ("graph_sha256", "graph_bytes")}  # the fp32 graph's
        Path(tmp).write_bytes(sealed_model(onnx.load(str(tmp)), meta))
    return output


def quantize_checkpoint(checkpoint: str | Path | Sequence[str | Path], output: str | Path | None = None,
                        method: str = DEFAULT_METHOD, exclude: Sequence[str] = (),
                        faces: Sequence[np.ndarray] | None = None) -> Path:
    """The int8 export of a checkpoint, or of the ensemble of several, at ``output`` (for one checkpoint by
    default int8_path beside it): exported to fp32 (models.onnx_export), then quantized, calibrated on ``faces``
    (default: calibration_faces(), the fixed sample of FER-2013's training split)."""
    from models.onnx_export import check_output, export_onnx

    paths = [Path(p) for p in one_or_more(checkpoint)]
    if not paths:
        raise cli.CommandError("no checkpoint to quantize")
    if len(paths) > 1 and not output:
        raise cli.CommandError("an ensemble's int8 export needs an output file (-o FILE.int8.onnx)")
    output = check_output(paths, output if output else int8_path(paths[0]))
    if faces is None:
        faces = calibration_faces()
    with tempfile.TemporaryDirectory(prefix="fer-quantize-") as tmp:
        fp32 = export_onnx(paths, Path(tmp) / "fp32.onnx")
        return quantize_onnx(fp32, output, faces, method, exclude)


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("models.quantize", __doc__)
    g = ap.add_argument_group("quantization")
    g.add_argument("checkpoint", nargs="+",
                   help="a checkpoint written by training (e.g. weights/default.pt); several make one ensemble "
                        "(their probabilities averaged; needs -o)")
    g.add_argument("-o", "--output",
                   help="the .onnx file to write (default for one checkpoint: NAME.int8.onnx beside it)")
    g.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"how activation ranges are calibrated (default {DEFAULT_METHOD})")
    g.add_argument("--exclude", nargs="+", default=[], metavar="NODE",
                   help="ONNX node names to keep in fp32 (e.g. /classifier/classifier.9/Gemm)")
    g.add_argument("--data", default=str(SHARED_FER),
                   help="FER-2013 as a folder of <split>/<emotion>/ images, whose train split calibrates "
                        "(default: ../shared/data/fer2013 beside the checkout)")
    g.add_argument("--faces", type=cli.number(1, kind=int), default=CALIBRATION_FACES,
                   help=f"how many training faces calibrate, drawn with a fixed seed (default {CALIBRATION_FACES}, "
                        "what the app's own quantization uses)")
    return ap


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        faces = calibration_faces(args.data, args.faces)
    except CalibrationError as exc:
        raise cli.CommandError(str(exc)) from None
    return write_model(lambda: quantize_checkpoint(args.checkpoint, args.output, args.method, args.exclude, faces),
                       args.output or int8_path(args.checkpoint[0]),
                       f" ({args.method} calibration on {len(faces)} training faces)")


def main(argv: list[str] | None = None) -> int:
    """Quantize as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, (CheckpointError,))


if __name__ == "__main__":
    sys.exit(main())

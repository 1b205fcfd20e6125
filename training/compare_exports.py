"""Exported models side by side, run by ONNX Runtime as the app runs them (an fp32 export beside its int8 one,
models.quantize): single-crop accuracy on a FER-2013 split and on its corrupted copy (training.corrupted_val), and
milliseconds per face with 1 and 4 faces in a batch. The files take turns within every timing round, so a shared
machine's changing load falls on all of them alike; the figure is the median over the rounds.

    python -m training.compare_exports weights/default.onnx weights/default.int8.onnx
    python -m training.compare_exports a.onnx a.int8.onnx --no-accuracy --rounds 15
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fercore.cli import interruptible_imports

with interruptible_imports():
    import numpy as np

    from fercore import cli
    from fercore.calibration import softmax
    from tqdm import tqdm

    from models.corruptions import KINDS, LEVELS, corrupted_copies
    from models.errors import CheckpointError
    from models.onnx_runtime import export_precision, open_session
    from models.preprocessing import Preprocessing, faces_to_input
    from training.data import DataError, load_split

USER_ERRORS = (CheckpointError, DataError)
BATCH_SIZES = (1, 4)
CROP = 96  # timing crops are this many pixels, as a face a webcam sees: the classifier resizes each one


class Export:
    """One exported model as the app's classifier runs it: preprocessing, the session, the softmax."""

    def __init__(self, path: str | Path, threads: int) -> None:
        self.path = Path(path)
        self.session, meta = open_session(path, threads)
        self.prep = Preprocessing.from_dict(meta["preprocessing"])
        self.temperature = float(meta.get("temperature", 1.0))
        self.precision = export_precision(meta)

    def probabilities(self, faces: list[np.ndarray] | np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {"faces": faces_to_input(list(faces), self.prep)})[0]
        return softmax(logits, self.temperature, dtype=np.float32)

    def accuracy(self, images: np.ndarray, labels: np.ndarray, batch: int = 512) -> float:
        """Single-crop accuracy on uint8 faces (N, H, W)."""
        predicted = np.concatenate([self.probabilities(images[i:i + batch]).argmax(1)
                                    for i in range(0, len(images), batch)])
        return float((predicted == labels).mean())


def ms_per_face(exports: list[Export], faces: list[np.ndarray], rounds: int, calls: int = 30) -> list[dict]:
    """Median milliseconds per face of each export for each batch size in BATCH_SIZES (``calls`` calls per
    measurement), the exports taking turns within each of ``rounds`` rounds after one warm-up round."""
    times = [{n: [] for n in BATCH_SIZES} for _ in exports]
    for r in range(rounds + 1):
        for i, export in enumerate(exports):
            for n in BATCH_SIZES:
                start = time.perf_counter()
                for _ in range(calls):
                    export.probabilities(faces[:n])
                if r:  # round 0 warms the sessions up
                    times[i][n].append((time.perf_counter() - start) * 1000 / calls / n)
    return [{n: float(np.median(t[n])) for n in BATCH_SIZES} for t in times]


def compare(paths: list[str | Path], data: str | Path, split: str = "val", cache_dir: str | None = None,
            accuracy: bool = True, rounds: int = 9, threads: int = 2, seed: int = 0,
            progress: bool = True) -> list[dict]:
    """For each export: its precision, ``split`` and corrupted-``split`` accuracy (with ``accuracy``) and
    ms per face (``ms_per_face``, on ``threads`` threads, faces cut from the split)."""
    exports = [Export(path, threads) for path in paths]
    images, labels = load_split(data, split, cache_dir)
    results = [{"export": str(e.path), "precision": e.precision} for e in exports]
    if accuracy:
        for export, result in zip(exports, results):
            result[split] = export.accuracy(images, labels)
            result["corrupted"] = []
        for _, _, faces in tqdm(corrupted_copies(images, seed), total=len(KINDS) * len(LEVELS), unit="copy",
                                desc="corrupted", disable=not progress):
            for export, result in zip(exports, results):
                result["corrupted"].append(export.accuracy(faces, labels))
        for result in results:
            result["corrupted"] = float(np.mean(result["corrupted"]))
    import cv2

    crops = [cv2.resize(face, (CROP, CROP), interpolation=cv2.INTER_LINEAR) for face in images[:max(BATCH_SIZES)]]
    for result, ms in zip(results, ms_per_face(exports, crops, rounds)):
        result["ms_per_face"] = ms
    return results


def format_table(results: list[dict], split: str = "val") -> str:
    head = f"{'export':40} {'precision':>9} {split:>8} {'corrupted':>9}" + "".join(
        f" {f'ms/face x{n}':>11}" for n in BATCH_SIZES)
    lines = [head]
    for r in results:
        acc = f" {r[split]:8.2%} {r['corrupted']:9.2%}" if split in r else f" {'':8} {'':9}"
        lines.append(f"{r['export']:40} {r['precision']:>9}{acc}"
                     + "".join(f" {r['ms_per_face'][n]:11.3f}" for n in BATCH_SIZES))
    return "\n".join(lines)


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("training.compare_exports", __doc__)
    g = ap.add_argument_group("exports")
    g.add_argument("exports", nargs="+", help="ONNX files written by models.onnx_export or models.quantize")
    data = cli.add_data_args(ap, device=False)
    data.add_argument("--split", default="val", help="the split to measure on (default val)")
    m = ap.add_argument_group("measurement")
    m.add_argument("--no-accuracy", action="store_true", help="time only, without the accuracy figures")
    m.add_argument("--rounds", type=cli.number(1, kind=int), default=9,
                   help="timing rounds, each running every export in turn (default 9; the median is reported)")
    m.add_argument("--threads", type=cli.number(1, kind=int), default=2,
                   help="ONNX Runtime threads per session (default 2, as the app's benchmark)")
    m.add_argument("--no-progress", action="store_true", help="no progress bar over the corrupted copies")
    return ap


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    results = compare(args.exports, args.data, args.split, args.cache_dir, not args.no_accuracy, args.rounds,
                      args.threads, progress=not args.no_progress)
    print(format_table(results, args.split))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Compare as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())

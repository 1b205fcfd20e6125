"""A deterministic corrupted copy of a FER-2013 split: every image under each camera corruption
(training.camera) at three strengths, so robustness is reported beside clean accuracy.

    python -m training.corrupted_val --data ../shared/data/fer2013 --split val --out corrupted_val/
    python -m training.evaluate weights/default.pt --corrupted        # the same copy, built in memory

The written copy is one folder layout per corruption (``OUT/<kind>-<level>/<split>/<emotion>/*.png``), so
``training.evaluate --data OUT/blur-severe`` and ``realtime.evaluate`` read it like any FER-2013 folder.
The same seed gives the same images on every machine.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fercore.classes import EMOTIONS
from fercore.atomic import atomic_path
from training.camera import KINDS, corrupt
from training.data import DataError, load_split

LEVELS = {"mild": 0.0, "moderate": 0.5, "severe": 1.0}


def corrupted_copies(images: np.ndarray, seed: int = 0) -> Iterator[tuple[str, str, np.ndarray]]:
    """(kind, level, corrupted images) for every corruption kind and level; ``images`` is uint8 (N, H, W).
    Each (kind, level) has its own generator, so one copy never depends on which others were made."""
    for k, kind in enumerate(KINDS):
        for lv, (level, severity) in enumerate(LEVELS.items()):
            rng = np.random.default_rng([seed, k, lv])
            yield kind, level, np.stack([corrupt(face, kind, severity, rng) for face in images])


def write_copy(images: np.ndarray, labels: np.ndarray, split: str, out: Path, seed: int = 0) -> int:
    """Write every corrupted copy as a folder layout under ``out``; returns the number of images written."""
    written = 0
    total = len(KINDS) * len(LEVELS)
    for kind, level, faces in tqdm(corrupted_copies(images, seed), total=total, desc="corrupt", unit="copy"):
        for i, (face, label) in enumerate(zip(faces, labels)):
            path = out / f"{kind}-{level}" / split / EMOTIONS[label] / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                if not cv2.imwrite(str(tmp), face):
                    raise OSError(f"could not write {path}")
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.corrupted_val", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fer2013", help="FER-2013 folder, fer2013.csv or icml_face_data.csv")
    ap.add_argument("--split", default="val", help="the split to corrupt (default val)")
    ap.add_argument("--out", required=True, help="folder to write the corrupted copies into")
    ap.add_argument("--seed", type=int, default=0, help="the copy's seed (default 0, the one model cards report)")
    ap.add_argument("--cache-dir", default="~/.cache/fer-emotion", help="decoded-data cache; 'none' to disable")
    args = ap.parse_args(argv)
    try:
        images, labels = load_split(args.data, args.split, None if args.cache_dir == "none" else args.cache_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    n = write_copy(images, labels, args.split, Path(args.out), args.seed)
    print(f"wrote {n} images: {len(KINDS)} corruptions x {len(LEVELS)} levels of {len(images)} {args.split} "
          f"images under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

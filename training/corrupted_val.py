"""A deterministic corrupted copy of a FER-2013 split: every image under each camera corruption
(models.corruptions) at three strengths, so robustness is reported beside clean accuracy.

    python -m training.corrupted_val --data ../shared/data/fer2013 --split val --out corrupted_val/
    python -m training.evaluate weights/default.pt --corrupted        # the same copy, built in memory

The written copy is one folder layout per corruption (``OUT/<kind>-<level>/<split>/<emotion>/*.png``), so
``training.evaluate --data OUT/blur-severe`` and ``realtime.commands.evaluate`` read it like any FER-2013 folder.
The same seed gives the same images on every machine.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fercore.cli import interruptible_imports

with interruptible_imports():
    import cv2
    import numpy as np
    from tqdm import tqdm

    from fercore import cli
    from fercore.atomic import atomic_path
    from fercore.classes import EMOTIONS
    from models.corruptions import KINDS, LEVELS, corrupted_copies
    from training.data import DataError, load_split

USER_ERRORS = (DataError,)
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


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("training.corrupted_val", __doc__)
    data = cli.add_data_args(ap, device=False)
    data.add_argument("--split", default="val", help="the split to corrupt (default val)")
    g = ap.add_argument_group("output")
    g.add_argument("--out", required=True, help="folder to write the corrupted copies into")
    g.add_argument("--seed", type=cli.number(0, kind=int), default=0,
                   help="the copy's seed (default 0, the one model cards report)")
    return ap


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    images, labels = load_split(args.data, args.split, args.cache_dir)
    try:
        n = write_copy(images, labels, args.split, Path(args.out), args.seed)
    except OSError as exc:  # a folder that cannot be made or written to: the user picks another --out
        raise cli.CommandError(f"cannot write the copy under {args.out}: {exc}") from exc
    print(f"wrote {n} images: {len(KINDS)} corruptions x {len(LEVELS)} levels of {len(images)} {args.split} "
          f"images under {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Write the copy as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())

"""Write a grid of augmented training samples to a PNG: look at what the model is fed before training.

    python -m training.preview --config training/configs/default.yaml -o augmented.png
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from fercore.classes import EMOTIONS
from models import build_model
from fercore.atomic import atomic_path
from training.augment import BatchAugment
from training.config import ConfigError, load_config
from training.data import DataError, load_split


def augmented_grid(cfg: dict, rows: int = 6, cols: int = 8, seed: int = 0):
    """A matplotlib figure: each row one random training image, original first, then augmented copies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = cfg["model"]
    prep = build_model(m["name"], **m["args"]).preprocessing
    images, labels = load_split(cfg["data"]["root"], cfg["data"]["train_split"], cfg["data"]["cache_dir"])
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=rows, replace=False)
    faces = torch.from_numpy(images[picks]).repeat_interleave(cols - 1, dim=0)
    augmented = BatchAugment(cfg["augment"], prep)(faces, torch.Generator().manual_seed(seed))
    augmented = prep.denormalize(augmented).squeeze(1).numpy()
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.35), dpi=100)
    for r, i in enumerate(picks):
        axes[r, 0].imshow(images[i], cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_title(f"{EMOTIONS[labels[i]]}", fontsize=8)
        for c in range(1, cols):
            axes[r, c].imshow(augmented[r * (cols - 1) + c - 1], cmap="gray", vmin=0, vmax=1)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 1].set_title("augmented ->", fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="training/configs/default.yaml")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("-o", "--output", default="augmented.png")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        fig = augmented_grid(cfg, seed=args.seed)
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with atomic_path(args.output) as tmp:
        fig.savefig(tmp)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

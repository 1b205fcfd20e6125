"""Write a grid of augmented training samples to a PNG: look at what the model is fed before training.

    python -m training.preview --config training/configs/default/stage1.yaml -o augmented.png
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
    from fercore.atomic import describe, write_figure
    from fercore.classes import EMOTIONS
    from fercore.paths import CONFIGS, ROOT
    from models import build_model
    from training.augment import BatchAugment
    from training.config import ConfigError
    from training.data import DataError, load_split
    from training.outputs import check_writable
    from training.run import config_from_args

USER_ERRORS = (ConfigError, DataError)
DEFAULT_CONFIG = CONFIGS / "default" / "stage1.yaml"


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


def image_format(path: str | Path) -> str:
    """The picture format ``path``'s suffix names, one matplotlib writes (CommandError otherwise)."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise cli.CommandError(f"-o {path}: give a picture file name ending in one of "
                               f"{', '.join('.' + f for f in sorted(formats))}")
    return suffix


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("training.preview", __doc__)
    g = ap.add_argument_group("augmentation")
    g.add_argument("--config", default=str(DEFAULT_CONFIG),
                   help=f"YAML config whose augment and data sections are used "
                        f"(default {DEFAULT_CONFIG.relative_to(ROOT)})")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set augment.camera_p=1 (repeatable)")
    g.add_argument("--seed", type=cli.number(0, kind=int), default=0,
                   help="picks the images and their augmentations (default 0)")
    out = ap.add_argument_group("output")
    out.add_argument("-o", "--output", default="augmented.png", help="the PNG to write (default augmented.png)")
    return ap


def command(argv: list[str] | None = None) -> int:
    ap = get_parser()
    args = ap.parse_args(argv)
    cfg = config_from_args(ap, args.config, args.overrides)
    image_format(args.output)
    check_writable(args.output, what="-o")
    fig = augmented_grid(cfg, seed=args.seed)
    try:
        write_figure(fig, args.output)
    except OSError as exc:
        raise cli.CommandError(describe(args.output, exc)) from None
    print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Write the preview as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())

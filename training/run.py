"""Train a model on FER-2013.

    python -m training.run --config training/configs/cnn.yaml
    python -m training.run --config training/configs/cnn.yaml --set train.epochs=5 --set optim.lr=3e-4
    python -m training.run --config training/configs/cnn.yaml --resume        # continue after Ctrl-C
    torchrun --nproc_per_node 2 -m training.run --config training/configs/cnn.yaml   # DDP

Outputs go to ``output.dir``: best.pt (best val accuracy), last.pt (resumable), train.log, config.yaml,
tensorboard/.
"""
from __future__ import annotations

import argparse
import sys

from training.config import ConfigError, load_config
from training.data import DataError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML config (see training/configs/)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    ap.add_argument("--resume", action="store_true", help="continue from output.dir/last.pt")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), help="shortcut for --set train.device=...")
    args = ap.parse_args(argv)
    overrides = args.overrides + ([f"train.device={args.device}"] if args.device else [])
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    from training.trainer import Trainer  # after validation: a bad config fails before torch loads

    try:
        Trainer(cfg, resume=args.resume).fit()
    except KeyboardInterrupt:
        return 130
    except (DataError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

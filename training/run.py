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

import torch

from fercore import cli
from models.checkpoint import CheckpointError
from training.config import ConfigError, load_config
from training.data import DataError

USER_ERRORS = (ConfigError, DataError, CheckpointError)


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    ap = cli.parser("training.run", __doc__)
    g = ap.add_argument_group("training")
    g.add_argument("--config", required=True, help="YAML config file (see training/configs/)")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    g.add_argument("--resume", action="store_true", help="continue from output.dir/last.pt")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"),
                   help="shortcut for --set train.device=... (auto: CUDA when there is a GPU)")
    return ap, ap.parse_args(argv)


def config_from_args(ap: argparse.ArgumentParser, path: str, overrides: list[str]) -> dict:
    """The config file ``path`` with ``overrides`` (KEY=VALUE) applied. A bad override is a usage error, as a bad
    option value is (argparse exits with status 2); a bad config file is a user error (ConfigError)."""
    try:
        return load_config(path, overrides)
    except ConfigError as exc:
        if not overrides:
            raise
        load_config(path)  # raises when the file itself is at fault; otherwise the overrides are
        ap.error(f"argument --set: {exc}")


def command(argv: list[str] | None) -> int:
    ap, args = parse_args(argv)
    overrides = args.overrides + ([f"train.device={args.device}"] if args.device else [])
    cfg = config_from_args(ap, args.config, overrides)
    cli.resolve_device(cfg["train"]["device"], torch.cuda.device_count(), option="train.device")
    from training.trainer import Trainer  # after validation: a bad config fails before the trainer loads

    Trainer(cfg, resume=args.resume).fit()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Train as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage, 130 Ctrl-C)."""
    return cli.run(command, argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())

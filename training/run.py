"""Train a model on FER-2013.

    python -m training.run --config cnn                     # a shipped recipe by name (--list-configs), or a path
    python -m training.run --config cnn --set train.epochs=5 --set optim.lr=3e-4
    python -m training.run --config cnn --resume            # continue after Ctrl-C, from output.dir/last.pt
    python -m training.run --config cnn --overwrite         # start over, replacing the run
    python -m training.run --config cnn --print-config      # every value the run would use
    torchrun --nproc_per_node 2 -m training.run --config cnn   # DDP

A smoke run (a minute on a CPU): --set data.limit=500 --set train.epochs=1 --set output.dir=runs/smoke keeps 500
images per split. Outputs go to ``output.dir`` (runs/<recipe name> unless set): best.pt (best val accuracy),
last.pt (resumable), train.log, config.yaml, tensorboard/. A folder holding an earlier run is refused unless
--resume or --overwrite says what to do with it, and one run at a time writes to a folder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fercore import cli
from models.errors import CheckpointError
from training.config import load_config, shipped_configs
from training.errors import ConfigError, DataError
from training.rundir import check_run_folder

# torch and the trainer load inside command(), after the config is checked, so a Ctrl-C while they load ends
# quietly (fercore.cli.run) and a bad config fails at once.
USER_ERRORS = (ConfigError, DataError, CheckpointError)


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("training.run", __doc__)
    g = ap.add_argument_group("training")
    g.add_argument("--config", help="a shipped recipe's name (cnn, resnet18, default/stage1, ...: --list-configs) or "
                                    "a YAML config file")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    start = g.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from output.dir/last.pt")
    start.add_argument("--overwrite", action="store_true",
                       help="start over in an output.dir that holds an earlier run, deleting its checkpoints, log "
                            "and TensorBoard events (without --resume or --overwrite such a folder is refused)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"),
                   help="shortcut for --set train.device=... (auto: CUDA when there is a GPU)")
    g.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    g.add_argument("--list-configs", action="store_true", help="list the shipped recipes and exit")
    return ap


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    ap = get_parser()
    args = ap.parse_args(argv)
    if args.config is None and not args.list_configs:
        ap.error("the following arguments are required: --config")
    return ap, args


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


def already_finished(cfg: dict) -> str | None:
    """For --resume: why there is nothing to train (training.rundir.finished), or None."""
    from models.checkpoint import read_checkpoint
    from training.rundir import check_resume, finished, resume_message

    path = Path(cfg["output"]["dir"]) / "last.pt"
    ckpt = read_checkpoint(path)
    if not isinstance(ckpt.get("training"), dict):
        raise CheckpointError(f"{path} has no training state to resume from (a best.pt or epoch file?)")
    check_resume(ckpt.get("config", {}), cfg, path)
    return resume_message(path, ckpt["training"], cfg) if finished(ckpt["training"], cfg) else None


def command(argv: list[str] | None = None) -> int:
    ap, args = parse_args(argv)
    if args.list_configs:
        recipes = shipped_configs()
        width = max(len(name) for name, _ in recipes)
        print("\n".join(f"{name:{width}}  {about}" for name, about in recipes))
        return 0
    overrides = args.overrides + ([f"train.device={args.device}"] if args.device else [])
    cfg = config_from_args(ap, args.config, overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, width=120), end="")
        return 0
    check_run_folder(cfg["output"]["dir"], args.resume, args.overwrite)  # before seconds of loading
    import torch

    cli.resolve_device(cfg["train"]["device"], torch.cuda.device_count(), option="train.device")
    if args.resume and (done := already_finished(cfg)):
        print(done)
        return 0
    from training.trainer import Trainer

    Trainer(cfg, resume=args.resume, overwrite=args.overwrite).fit()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Train as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage, 130 Ctrl-C)."""
    return cli.run(command, argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())

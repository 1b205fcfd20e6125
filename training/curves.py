"""Val accuracy by epoch and by training hours of finished or running trainings, drawn from their train.log:
the picture that compares recipes, and shows where the hours went.

A run started from another run's weights (``model.init_from`` in its config.yaml naming a checkpoint in a
folder that has a train.log) is drawn continuing that run, so a chain of stages reads as one curve. A stage
starts where its parent's run ended, since those hours were spent, though from the parent's best epoch's
weights. Hours are the logged epoch times added up: wall time, with any pause in the middle of an epoch, but
not the part of an interrupted epoch that ran before its resume.

    python -m training.curves runs/default/stage1 runs/fast/stage1 \\
        --target 71.5 --out docs/campaign_curves.png
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from fercore import cli
from fercore.atomic import describe, write_figure
from training.config import read_yaml_text
from training.errors import ConfigError
from training.outputs import check_writable

USER_ERRORS = (ConfigError,)
# The line training.logs.log_epoch writes at the end of every epoch.
EPOCH_LINE = re.compile(r"epoch\s+(\d+)/(\d+)\s+train loss \S+ acc \S+ \| val loss \S+ acc ([\d.]+) "
                        r"macro-F1 \S+ \| lr \S+ \| (\d+)s")


@dataclass(frozen=True)
class Epoch:
    epoch: int
    val_acc: float
    seconds: int


@dataclass(frozen=True)
class Run:
    """One training's folder and its epochs, in order."""
    folder: Path
    epochs: list[Epoch]
    planned: int  # train.epochs of its config, as the log states it

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def best(self) -> Epoch:
        return max(self.epochs, key=lambda e: e.val_acc)

    @property
    def hours(self) -> float:
        return sum(e.seconds for e in self.epochs) / 3600


def read_log(path: Path) -> tuple[list[Epoch], int]:
    """The epochs a train.log records (a later line for the same epoch number wins: a restarted run) and the
    planned number of epochs; ConfigError when it records none."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ConfigError(describe(path, exc)) from None
    found, planned = {}, 0
    for m in EPOCH_LINE.finditer(text):
        e = int(m[1])
        found[e] = Epoch(e, float(m[3]), int(m[4]))
        planned = int(m[2])
    if not found:
        raise ConfigError(f"{path}: no finished epoch in it (not a training log, or the run has not finished one)")
    return [found[e] for e in sorted(found)], planned


def _log_of(folder: Path) -> Path:
    log = folder / "train.log" if folder.is_dir() else folder
    if not log.is_file():
        raise ConfigError(f"not found: {log} (give a run folder holding a train.log, or the log itself)")
    return log


def parent_folder(folder: Path) -> Path | None:
    """The run folder whose weights ``folder``'s run started from, when its config.yaml names one (relative
    paths are taken from the working directory, as training.run took them) that has a train.log."""
    config = folder / "config.yaml"
    try:
        cfg = read_yaml_text(config.read_text(errors="replace"), str(config)) if config.is_file() else None
    except OSError as exc:
        raise ConfigError(describe(config, exc)) from None
    model = cfg.get("model") if isinstance(cfg, dict) else None
    init = model.get("init_from") if isinstance(model, dict) else None
    if not isinstance(init, str):
        return None
    parent = Path(init).parent
    return parent if (parent / "train.log").is_file() else None


def read_chain(path: str | Path) -> list[Run]:
    """The run at ``path`` (a run folder or its train.log) with the runs it started from, first run first."""
    log, chain, seen = _log_of(Path(path)), [], set()
    while True:
        seen.add(log.parent.resolve())
        chain.insert(0, Run(log.parent, *read_log(log)))
        parent = parent_folder(log.parent)
        if parent is None or parent.resolve() in seen:  # the first run, or a cycle of configs
            return chain
        log = parent / "train.log"


def cumulative(chain: list[Run]) -> list[tuple[list[float], list[float], list[float]]]:
    """Per run of a chain: its epochs counted from the chain's start and the training hours spent by each
    epoch's end, each led by where the run started (the parent's end, or 0), and val accuracy (%)."""
    out, epochs, hours = [], 0.0, 0.0
    for run in chain:
        xs, hs, accs = [epochs], [hours], []
        for e in run.epochs:
            xs.append(xs[0] + e.epoch)
            hs.append(hs[-1] + e.seconds / 3600)
            accs.append(100 * e.val_acc)
        out.append((xs, hs, accs))
        epochs, hours = xs[-1], hs[-1]
    return out


def summary(chains: list[list[Run]]) -> str:
    """One line per run: epochs done of planned, hours, best val accuracy and its epoch."""
    lines = [f"{'run':<24} {'from':<24} {'epochs':>8} {'hours':>6}  best val"]
    for chain in chains:
        for parent, run in zip([None, *chain], chain):
            lines.append(f"{run.name:<24} {parent.name if parent else '-':<24} "
                         f"{f'{len(run.epochs)}/{run.planned}':>8} {run.hours:6.2f}  "
                         f"{100 * run.best.val_acc:.2f}% (epoch {run.best.epoch})")
    return "\n".join(lines)


def draw(chains: list[list[Run]], targets: list[float], path: str | Path) -> None:
    """Two panels, val accuracy by epoch and by training hours; each chain one colour, each stage's best epoch
    marked, ``targets`` (%) as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), dpi=100, sharey=True)
    for i, chain in enumerate(chains):
        colour = f"C{i}"
        for j, (run, (xs, hs, accs)) in enumerate(zip(chain, cumulative(chain))):
            label = " -> ".join(r.name for r in chain) if j == 0 else None
            b = run.epochs.index(run.best)
            for ax, x in zip(axes, (xs, hs)):
                ax.plot(x[1:], accs, color=colour, linewidth=1.4, label=label)
                ax.plot(x[1 + b], accs[b], marker="*", markersize=10, color=colour)
                ax.annotate(f"{accs[b]:.1f}", (x[1 + b], accs[b]), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=8, color=colour)
                if j:
                    ax.axvline(x[0], color=colour, linestyle=":", linewidth=0.8)
    for ax, xlabel in zip(axes, ("epochs (stages continue their parent's count)", "training hours (as logged)")):
        for t in targets:
            ax.axhline(t, color="grey", linestyle="--", linewidth=1)
            ax.annotate(f"target {t:g}%", (1, t), xycoords=("axes fraction", "data"), xytext=(-4, 2),
                        textcoords="offset points", ha="right", fontsize=8, color="grey")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if targets:
        axes[0].set_ylim(top=max(max(targets) + 1.5, axes[0].get_ylim()[1]))
    axes[0].set_ylabel("val accuracy, single crop (%)")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Val accuracy per epoch; stars: each stage's best epoch; dotted: a stage starts", fontsize=10)
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("training.curves", __doc__)
    g = ap.add_argument_group("runs")
    g.add_argument("runs", nargs="+", metavar="RUN",
                   help="a run folder holding train.log (and config.yaml, to find the run it started from), or "
                        "a train.log; one curve each")
    out = ap.add_argument_group("output")
    out.add_argument("--out", default="curves.png", help="the PNG to write (default curves.png)")
    out.add_argument("--target", type=cli.number(0, 100), nargs="*", default=[], metavar="PERCENT",
                     help="val accuracies to draw as dashed lines, e.g. --target 71.5 73")
    return ap


def command(argv: list[str] | None = None) -> int:
    ap = get_parser()
    args = ap.parse_args(argv)
    if Path(args.out).suffix.lower() != ".png":
        ap.error(f"--out {args.out}: give a file name ending in .png")
    check_writable(args.out, what="--out")
    chains = [read_chain(r) for r in args.runs]
    print(summary(chains))
    draw(chains, args.target, args.out)
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Draw the curves as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())

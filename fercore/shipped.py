"""The shipped emotion models by name, so ``--checkpoint fast`` and ``EmotionRecognizer("accurate")`` work from any
folder, in a checkout or an installed copy (the files live in fercore.paths.WEIGHTS).

A name stands for one checkpoint or an ensemble of several; a path still works wherever a name does. The
figures ``format_models`` lists are read from each model's evaluation record (weights/eval/<name>/), the same
files the model cards (weights/README.md) quote.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fercore.paths import WEIGHTS


@dataclass(frozen=True)
class ShippedModel:
    members: tuple[str, ...]  # checkpoint file names in WEIGHTS, averaged when several
    about: str
    eval_name: str  # its evaluation record: WEIGHTS/eval/<eval_name>/metrics_val.json


MODELS = {
    "default": ShippedModel(("default.pt",), "the default: CNN at width 0.75, 4.0 M parameters", "default"),
    "fast": ShippedModel(("fast.pt",), "for slow machines: CNN at width 0.5, 1.8 M parameters", "fast"),
    "accurate": ShippedModel(("default.pt", "fast.pt", "wide.pt"),
                             "default, fast and wide (CNN at width 1.0) averaged: the best score, 3.3x the time",
                             "accurate"),
}
DEFAULT_MODEL = "default"


def model_files(checkpoint: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[Path]:
    """The files a checkpoint setting names: a shipped model's name (None is the default) becomes its members'
    paths; paths are kept as given (existence is the loader's to check)."""
    if checkpoint is None:
        checkpoint = DEFAULT_MODEL
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = [checkpoint]
    paths: list[Path] = []
    for item in checkpoint:
        name = os.fspath(item)
        if name in MODELS:
            paths += [WEIGHTS / member for member in MODELS[name].members]
        else:
            paths.append(Path(name))
    return paths


def ensemble_exports(paths: Sequence[str | os.PathLike], suffix: str) -> list[Path]:
    """Where a shipped ensemble made of exactly ``paths`` keeps its export with this suffix (``.onnx``,
    ``.int8.onnx``): WEIGHTS/<name><suffix>, so an installed copy runs it without exporting or quantizing
    (quantizing needs FER-2013's training faces). Whoever opens it still checks its members' digests."""
    given = [Path(p).resolve() for p in paths]
    return [WEIGHTS / f"{name}{suffix}" for name, model in MODELS.items()
            if len(model.members) > 1 and [(WEIGHTS / m).resolve() for m in model.members] == given]


def is_shipped(path: Path) -> bool:
    """Whether ``path`` is where a shipped model's member lives."""
    return path.parent == WEIGHTS and any(path.name in m.members for m in MODELS.values())


def _figures(model: ShippedModel) -> str:
    try:
        record = json.loads((WEIGHTS / "eval" / model.eval_name / "metrics_val.json").read_text())
        val = record["results"]["none"]["accuracy"]
        corrupted = record["corrupted"]["mean"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no evaluation record"
    return f"FER-2013 val {100 * val:.2f}%, corrupted val {100 * corrupted:.2f}%"


def format_models() -> str:
    """One line per shipped model: name, members and their size on disk, accuracy, what it is for."""
    lines = []
    width = max(len(" + ".join(m.members)) for m in MODELS.values())
    for name, model in MODELS.items():
        files = [WEIGHTS / m for m in model.members]
        missing = [f.name for f in files if not f.is_file()]
        size = "missing: " + ", ".join(missing) if missing else \
            f"{sum(f.stat().st_size for f in files) / 2**20:.1f} MB"
        lines.append(f"{name:9} {' + '.join(model.members):{width}} {size:9} {_figures(model)}; {model.about}")
    lines.append(f"(files in {WEIGHTS}; cards in its README.md; speed in the README's speed table)")
    return "\n".join(lines)

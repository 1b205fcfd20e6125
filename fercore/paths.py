"""Where the project's files are, found from this file rather than from the working directory, so every
command works from any folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
# The shipped models: weights/ in a checkout (and an editable install); an installed copy (`pip install .`)
# carries them inside this package, as pyproject.toml maps weights/ to fercore/weights.
_PACKAGED_WEIGHTS = Path(__file__).resolve().parent / "weights"
WEIGHTS = _PACKAGED_WEIGHTS if _PACKAGED_WEIGHTS.is_dir() else ROOT / "weights"
DEFAULT_CHECKPOINT = WEIGHTS / "default.pt"
DETECTOR_MODELS = {  # "short": faces within ~2 m of a camera; "full": small or distant faces, group photos
    "short": WEIGHTS / "face_detection_short_range.tflite",
    "full": WEIGHTS / "face_detection_full_range_sparse.tflite",
}
CONFIGS = ROOT / "training" / "configs"
# Data and media that live beside the checkout, never in it (CI lays them there too).
SHARED = ROOT.parent / "shared"
SHARED_FER = SHARED / "data" / "fer2013"
SHARED_MEDIA = SHARED / "media"


def eval_folder(checkpoints: str | os.PathLike | Sequence[str | os.PathLike]) -> Path:
    """Where a model's measurements go by default: eval/<name>/ beside its checkpoint (weights/eval/default/
    for weights/default.pt), eval/<name>+<name>/ beside the first member for an ensemble; so the models in one
    folder never overwrite each other's figures."""
    paths = [Path(p) for p in one_or_more(checkpoints)]
    return paths[0].parent / "eval" / "+".join(p.stem for p in paths)


def one_or_more(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str | os.PathLike]:
    """A checkpoint argument as a list: one path (a str or os.PathLike) alone, or the several of an ensemble."""
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)

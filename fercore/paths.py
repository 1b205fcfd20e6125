"""Where the project's files are, found from this file rather than from the working directory, so every
command works from any folder."""
from __future__ import annotations

from pathlib import Path

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

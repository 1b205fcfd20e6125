"""Batched prediction with test-time augmentation: how training's validation, evaluation, weight averaging
and distillation all turn uint8 faces into class probabilities."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from fercore.tta import TTA_MODES
from models.errors import finite_probabilities
from models.preprocessing import Preprocessing


def _views(x: torch.Tensor, tta: str, black: float, pad: int = 4) -> list[torch.Tensor]:
    """Test-time views of a normalised batch. Ten-crop takes the five 48x48 crops of the image padded by
    ``pad`` with black (the training crop's own geometry, so every view is one the model saw) and their
    mirrors. ``black`` is the normalised value of a black pixel."""
    if tta == "none":
        return [x]
    if tta == "flip":
        return [x, x.flip(-1)]
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad), value=black)
    offsets = [(0, 0), (0, 2 * pad), (2 * pad, 0), (2 * pad, 2 * pad), (pad, pad)]
    crops = [padded[..., i:i + h, j:j + w] for i, j in offsets]
    return crops + [c.flip(-1) for c in crops]


@torch.inference_mode()
def predict(model: nn.Module, faces: np.ndarray | torch.Tensor, prep: Preprocessing, batch_size: int = 256,
            device: torch.device | str = "cpu", tta: str = "none", progress: bool = False) -> np.ndarray:
    """Class probabilities (N, K) for uint8 faces (N, H, W), averaged over the TTA views; the logits are divided
    by the model's calibrated ``temperature`` (a loaded checkpoint's; 1 for a model in training). CheckpointError
    when any is NaN or infinite (models.errors.finite_probabilities)."""
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
    model.eval()
    faces = torch.as_tensor(faces)
    out = []
    for start in tqdm(range(0, len(faces), batch_size), desc="evaluate", disable=not progress, unit="batch"):
        x = prep.normalize(faces[start:start + batch_size]).to(device)
        t = getattr(model, "temperature", 1.0)
        probs = [F.softmax(model(v).float() / t, dim=1) for v in _views(x, tta, black=prep.black)]
        out.append(torch.stack(probs).mean(0).cpu())
    return finite_probabilities(torch.cat(out).numpy()) if out else np.zeros((0, 0), dtype=np.float32)

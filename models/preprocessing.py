"""The one definition of how a face image becomes model input.

Training, evaluation and the realtime app all call these functions with the parameters stored in the
checkpoint, so the app never sees inputs the model was not trained on.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class Preprocessing:
    """Input config of a model: square grayscale faces of ``size`` pixels, normalised by mean/std."""

    size: int = 48
    channels: int = 1
    mean: float = 0.5
    std: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(**d)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any OpenCV image (gray, BGR, BGRA; 8 or 16 bit) as 8-bit grayscale."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def resize_face(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize a grayscale face crop to ``size`` x ``size`` (area interpolation when shrinking)."""
    if gray.shape == (size, size):
        return gray
    shrinking = gray.shape[0] > size or gray.shape[1] > size
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def normalize(faces: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """uint8 faces (N, H, W) or (N, 1, H, W) -> float input (N, 1, H, W) normalised by the model's mean/std."""
    if faces.dim() == 3:
        faces = faces.unsqueeze(1)
    return (faces.float() / 255.0 - prep.mean) / prep.std


def faces_to_input(gray_faces: list[np.ndarray], prep: Preprocessing) -> torch.Tensor:
    """Grayscale face crops of any size -> one normalised batch ready for the model."""
    if not gray_faces:
        return torch.empty(0, 1, prep.size, prep.size)
    stack = np.stack([resize_face(f, prep.size) for f in gray_faces])
    return normalize(torch.from_numpy(stack), prep)

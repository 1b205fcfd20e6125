"""The one definition of how a face image becomes model input.

Training, evaluation and the realtime app all call these functions with the parameters stored in the
checkpoint, so the app never sees inputs the model was not trained on.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # torch is not imported here: the app's ONNX Runtime path runs without it
    import torch


@dataclass(frozen=True)
class Preprocessing:
    """Input config of a model (as timm's models carry theirs): square grayscale faces of ``size`` pixels,
    normalised by mean/std, cut from a face detector's box widened by ``margin`` of its size per side (the
    framing FER-2013's faces have, so the app crops faces as the model saw them in training)."""

    size: int = 48
    mean: float = 0.5
    std: float = 0.5
    margin: float = 0.15

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not (isinstance(self.size, int) and 8 <= self.size <= 1024):
            raise ValueError(f"preprocessing size must be a whole number of pixels in [8, 1024], got {self.size!r}")
        for name in ("mean", "std", "margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"preprocessing {name} must be a finite number, got {value!r}")
        # Beyond these bounds normalised pixels overflow (a tiny std) or a crop covers the whole frame.
        if not (-10 <= self.mean <= 10 and 1e-3 <= self.std <= 100 and 0 <= self.margin <= 2):
            raise ValueError(f"preprocessing needs mean in [-10, 10], std in [0.001, 100] and margin in [0, 2], "
                             f"got mean {self.mean}, std {self.std}, margin {self.margin}")

    def normalize(self, faces: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """uint8 faces (N, H, W) or (N, 1, H, W) -> float32 model input (N, 1, H, W), as a numpy array or a
        torch tensor like the input (ONNX Runtime takes the one, PyTorch the other)."""
        if faces.ndim == 3:
            faces = faces[:, None]
        x = faces.astype(np.float32) if isinstance(faces, np.ndarray) else faces.float()
        return (x / 255.0 - self.mean) / self.std

    def normalize_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Intensities already in [0, 1] (augmentation works there) -> model input."""
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model input -> intensities in [0, 1], for pictures of what the model is fed."""
        return (x * self.std + self.mean).clamp(0, 1)

    @property
    def black(self) -> float:
        """The model-input value of a black pixel (what padding fills with)."""
        return -self.mean / self.std

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        """Read a checkpoint's description. Checkpoints before ``margin`` have the app's old default (0.15);
        older ones also carry ``channels``, which must be 1 (all models here read grayscale)."""
        if not isinstance(d, dict):
            raise ValueError(f"preprocessing must be a mapping, got {type(d).__name__}")
        d = dict(d)
        if d.pop("channels", 1) != 1:
            raise ValueError("preprocessing channels must be 1: the models read grayscale faces")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown preprocessing fields: {', '.join(sorted(unknown))}")
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


def faces_to_input(gray_faces: list[np.ndarray], prep: Preprocessing) -> np.ndarray:
    """Grayscale face crops of any size -> one normalised float32 batch (N, 1, size, size) for the model."""
    if not gray_faces:
        return np.zeros((0, 1, prep.size, prep.size), np.float32)
    return prep.normalize(np.stack([resize_face(f, prep.size) for f in gray_faces]))

"""Finding and reading photos of any format OpenCV knows, as the BGR uint8 frames the pipeline takes."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fercore.classes import IMAGE_SUFFIXES


class ImageError(ValueError):
    """A photo that is missing or cannot be decoded."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """Photos in a folder and its subfolders, in a stable order; hidden files (e.g. half-written ones) skipped."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image(p) and not p.name.startswith("."))


def read_image(path: Path) -> np.ndarray:
    """A photo as BGR uint8: OpenCV converts grayscale, 16-bit and alpha images and applies EXIF rotation."""
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"{path} is empty (0 bytes)")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{path}: cannot decode it as an image (truncated, damaged, not an image, "
                         "or over OpenCV's size limit)")
    return image

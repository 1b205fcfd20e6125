"""Finding, reading and writing photos of any format OpenCV knows, as the BGR uint8 frames the pipeline takes.

Files are read and written by Python and decoded or encoded in memory (np.fromfile + cv2.imdecode,
cv2.imencode + a write), so any path works, even one that is not valid UTF-8 (OpenCV's own file functions crash
the process on those), and a full disk is reported instead of ignored. A photo's size is read from its header
before it is decoded, so a huge image is refused with a message, not decoded into gigabytes or handed to the
face detector (MediaPipe crashes on images of about 700 megapixels).
"""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import cv2
import numpy as np

from fercore.atomic import atomic_path, printable
from fercore.classes import IMAGE_SUFFIXES

# The largest frame the app takes: 150 megapixels (e.g. 15000 x 10000, 450 MB as BGR). Bigger images are refused,
# not downscaled: their faces would be too small for the detector, which sees the frame at 128 or 192 pixels.
MAX_PIXELS = 150_000_000
# OpenCV reads GIFs (animated or not) as videos: they are annotated on their own, never as photos of a folder.
VIDEO_SUFFIXES = frozenset({".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})


class ImageError(ValueError):
    """A photo that is missing or cannot be decoded."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def too_large(width: int, height: int, what: str) -> str | None:
    """Why a ``width`` x ``height`` frame is refused, or None."""
    if width * height <= MAX_PIXELS:
        return None
    size = f"{width}x{height} pixels ({width * height / 1e6:.0f} megapixels)" if height > 1 else \
        f"{width / 1e6:.0f} megapixels"
    return f"{what} is {size}, more than the {MAX_PIXELS / 1e6:.0f} megapixels this app reads; downscale it first"


def list_folder(folder: Path) -> tuple[list[Path], list[dict]]:
    """(photos, others) of a folder and its subfolders, in a stable order. ``others`` are the visible files that
    are not photos, as ``{"source", "reason"}``: videos and GIFs (annotated on their own) and other files."""
    photos, others = [], []
    for p in sorted(folder.rglob("*")):
        if p.name.startswith(".") or p.is_dir() or not (p.is_file() or p.is_symlink()):
            continue
        if is_image(p):
            photos.append(p)
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            kind = "a GIF is read as a video" if p.suffix.lower() == ".gif" else "a video"
            others.append({"source": printable(p), "reason": f"{kind}: annotate it on its own"})
        else:
            others.append({"source": printable(p), "reason": "not a photo"})
    return photos, others


def image_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from an image file's header, without decoding it; None when Pillow does not know the
    format (OpenCV then decides). Over Pillow's own refusal limit (179 megapixels unless changed), which tells
    only the number of pixels, it gives (pixels, 1)."""
    try:
        from PIL import Image  # Pillow comes with matplotlib
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data)) as im:
                return im.size
        except Image.DecompressionBombError as exc:  # "Image size (900000000 pixels) exceeds limit of ..."
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            told = re.search(r"\((\d+) pixels\)", str(exc))
            return (int(told.group(1)) if told else limit, 1) if limit > MAX_PIXELS else None
        except Exception:  # a format Pillow does not know, or a damaged header
            return None


def read_image(path: Path) -> np.ndarray:
    """A photo as BGR uint8: OpenCV converts grayscale, 16-bit and alpha images and applies EXIF rotation."""
    shown = printable(path)
    if path.is_symlink() and not path.exists():
        raise ImageError(f"{shown} is a broken link (to {printable(path.readlink())})")
    if not path.exists():
        raise ImageError(f"image not found: {shown}")
    if not path.is_file():
        raise ImageError(f"{shown} is not a photo file (a folder, a device or a pipe)")
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise ImageError(f"cannot read {shown}: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise ImageError(f"{shown} is empty (0 bytes)")
    size = image_size(data)
    if size is not None and (problem := too_large(*size, shown)):
        raise ImageError(problem)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{shown}: cannot decode it as an image (truncated, damaged, not an image, "
                         "or over OpenCV's size limit)")
    if problem := too_large(image.shape[1], image.shape[0], shown):
        raise ImageError(problem)
    return image


def write_image(path: Path, image: np.ndarray) -> None:
    """Write a photo in the format its suffix names, atomically; ImageError when OpenCV cannot encode it,
    fercore.atomic.OutputError when it cannot be written (full disk, read-only folder)."""
    try:
        ok, data = cv2.imencode(path.suffix.lower(), image)
    except cv2.error:  # no encoder for this suffix
        ok = False
    if not ok:
        raise ImageError(f"cannot encode a photo as {path.suffix} for {printable(path)}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)

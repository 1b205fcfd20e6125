"""What a real camera and face detector do to a face that FER-2013's studio-like crops rarely show.

One definition of each corruption, used two ways: training draws random strengths per image
(``augment.camera_p``, so the model learns to read degraded faces), and ``corrupted_copies`` applies fixed
strengths to a deterministic copy of val (so robustness is measured, not guessed: ``training.evaluate
--corrupted``, ``training.corrupted_val``, the app's readability curves). Every function takes and returns a
uint8 grayscale face (H, W).
"""
from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

# Each kind's strength range as (mildest, strongest); a severity s in [0, 1] interpolates between them.
STRENGTHS: dict[str, tuple[float, float]] = {
    "low_light": (0.7, 0.25),   # gain on linear intensity, with a gamma that darkens mid-tones more
    "blur": (0.5, 1.6),         # Gaussian sigma in pixels of the 48-pixel face (defocus, motion)
    "low_resolution": (32, 12),  # the face seen at this many pixels, then scaled back up (a small face)
    "noise": (4.0, 24.0),       # sensor noise sigma in grey levels
    "jpeg": (60, 12),           # JPEG quality (a compressed stream)
    "box_shift": (0.06, 0.16),  # the detector's box off by this share of the face, with a scale change
    "rotation": (8.0, 25.0),    # head roll in degrees
}
KINDS = tuple(STRENGTHS)
# The order training applies them in: light, optics, sensor, compression (geometry comes from the batched
# affine step of training.augment, which already moves, zooms and rotates every image).
TRAIN_KINDS = ("low_light", "blur", "low_resolution", "noise", "jpeg")


def strength(kind: str, severity: float) -> float:
    if kind not in STRENGTHS:
        raise ValueError(f"unknown corruption {kind!r}; choose one of {', '.join(KINDS)}")
    low, high = STRENGTHS[kind]
    return low + (high - low) * float(np.clip(severity, 0.0, 1.0))


def low_light(face: np.ndarray, gain: float) -> np.ndarray:
    """A darker exposure: intensities scaled by ``gain`` after a gamma of 1/sqrt(gain) (shadows sink first)."""
    x = (face.astype(np.float32) / 255.0) ** (1.0 / np.sqrt(gain)) * gain
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def blur(face: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(face, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)


def low_resolution(face: np.ndarray, pixels: float) -> np.ndarray:
    h, w = face.shape
    side = max(4, int(round(pixels)))
    small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def noise(face: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(face.astype(np.float32) + rng.normal(0.0, sigma, face.shape), 0, 255).astype(np.uint8)


def jpeg(face: np.ndarray, quality: float) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, int(round(quality))])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode a face")
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


def affine(face: np.ndarray, angle: float = 0.0, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """Rotate by ``angle`` degrees and zoom by ``scale`` about the centre, then move by (dx, dy) pixels;
    black fill, as the training crop pads."""
    h, w = face.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(face, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def corrupt(face: np.ndarray, kind: str, severity: float, rng: np.random.Generator) -> np.ndarray:
    """``face`` with one corruption at ``severity`` in [0, 1]. ``rng`` draws the noise and the direction
    of a box shift or rotation."""
    s = strength(kind, severity)
    if kind == "low_light":
        return low_light(face, s)
    if kind == "blur":
        return blur(face, s)
    if kind == "low_resolution":
        return low_resolution(face, s)
    if kind == "noise":
        return noise(face, s, rng)
    if kind == "jpeg":
        return jpeg(face, s)
    if kind == "box_shift":
        h = face.shape[0]
        direction = rng.uniform(0, 2 * np.pi)
        zoom = 1.0 + s * rng.choice([-1.0, 1.0])
        return affine(face, scale=zoom, dx=s * h * np.cos(direction), dy=s * h * np.sin(direction))
    return affine(face, angle=s * rng.choice([-1.0, 1.0]))  # rotation


LEVELS = {"mild": 0.0, "moderate": 0.5, "severe": 1.0}


def corrupted_copies(images: np.ndarray, seed: int = 0) -> Iterator[tuple[str, str, np.ndarray]]:
    """(kind, level, corrupted images) for every corruption kind and level; ``images`` is uint8 (N, H, W).
    Each (kind, level) has its own generator, so one copy never depends on which others were made, and the
    same seed gives the same images on every machine."""
    for k, kind in enumerate(KINDS):
        for lv, (level, severity) in enumerate(LEVELS.items()):
            rng = np.random.default_rng([seed, k, lv])
            yield kind, level, np.stack([corrupt(face, kind, severity, rng) for face in images])


def camera_augment(faces: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Training-time camera effects on a uint8 batch (N, H, W): each kind of TRAIN_KINDS is applied to each
    image independently with probability ``p``, at a uniformly random severity."""
    out = faces.copy()
    apply = rng.random((len(faces), len(TRAIN_KINDS))) < p
    severity = rng.random((len(faces), len(TRAIN_KINDS)))
    for i in np.flatnonzero(apply.any(axis=1)):
        face = out[i]
        for k, kind in enumerate(TRAIN_KINDS):
            if apply[i, k]:
                face = corrupt(face, kind, severity[i, k], rng)
        out[i] = face
    return out

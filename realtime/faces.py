"""From detector boxes to grayscale face crops; the model-specific steps stay in models.preprocessing."""
from __future__ import annotations

import numpy as np

from fercore.boxes import Box, clip_box
from models.preprocessing import to_gray

# A crop narrower or shorter than this (a face almost entirely outside the frame) carries no expression.
MIN_FACE_PIXELS = 8


def crop_box(box: Box, margin: float, width: int, height: int) -> Box | None:
    """Widen a face box by ``margin`` x its size on every side and clip it to the frame.

    MediaPipe's boxes stop at the mouth and brows; FER-2013 faces include chin and forehead, hence the margin.
    None when less than MIN_FACE_PIXELS of the face is inside the frame.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x0, y0, x1, y1 = box
    dx, dy = round((x1 - x0) * margin), round((y1 - y0) * margin)
    x0, y0, x1, y1 = clip_box((x0 - dx, y0 - dy, x1 + dx, y1 + dy), width, height)
    if x1 - x0 < MIN_FACE_PIXELS or y1 - y0 < MIN_FACE_PIXELS:
        return None
    return x0, y0, x1, y1


def gray_crops(frame: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
    """Grayscale crops of clipped boxes; converting only the crops is cheaper than the whole frame."""
    return [to_gray(frame[y0:y1, x0:x1]) for x0, y0, x1, y1 in boxes]

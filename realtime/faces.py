"""From detector boxes to grayscale face crops; the model-specific steps stay in models.preprocessing."""
from __future__ import annotations

import cv2
import numpy as np

from fercore.boxes import Box, clip_box
from models.preprocessing import to_gray

# A face with less than this many pixels of width or height inside the frame carries no expression.
MIN_FACE_PIXELS = 8
# With align (off by default: docs/choosing_models.md), faces tilted more than this are turned upright. Measured on
# FER-2013 val (docs/readability.md): turning every face cost 0.5-0.7 points on faces tilted 0-10 degrees and
# gained 3.6 at 20, 9 at 30, 19 at 40.
ALIGN_ABOVE_DEGREES = 15.0


def crop_box(box: Box, margin: float) -> Box:
    """The square the model reads: the box widened by ``margin`` x its size on every side, made square about
    its centre (FER-2013's faces are square; MediaPipe's boxes stop at the mouth and brows, FER-2013's faces
    include chin and forehead, hence the margin). May reach outside the frame."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x0, y0, x1, y1 = box
    side = round(max(x1 - x0, y1 - y0) * (1 + 2 * margin))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    return left, top, left + side, top + side


def readable_part(box: Box, width: int, height: int) -> bool:
    """Whether enough of the face is inside the frame to read (MIN_FACE_PIXELS each way)."""
    x0, y0, x1, y1 = clip_box(box, width, height)
    return x1 - x0 >= MIN_FACE_PIXELS and y1 - y0 >= MIN_FACE_PIXELS


def gray_crop(frame: np.ndarray, square: Box, roll: float = 0.0) -> np.ndarray:
    """The grayscale square ``square`` of the frame; a part outside the frame is black, as training pads its
    shifted faces, so a face cut by the edge keeps its shape instead of being stretched. ``roll`` (degrees, the
    slope of the eye line as fercore.readability.head_pose measures it) turns the square with the head, so the
    eyes come out level, when it exceeds ALIGN_ABOVE_DEGREES."""
    h, w = frame.shape[:2]
    if abs(roll) > ALIGN_ABOVE_DEGREES:
        return _rotated_crop(frame, square, roll)
    x0, y0, x1, y1 = clip_box(square, w, h)
    gray = to_gray(frame[y0:y1, x0:x1])  # converting only the crop is cheaper than the whole frame
    pad = (y0 - square[1], square[3] - y1, x0 - square[0], square[2] - x1)
    if any(pad):
        gray = cv2.copyMakeBorder(gray, *pad, cv2.BORDER_CONSTANT, value=0)
    return gray


def _rotated_crop(frame: np.ndarray, square: Box, roll: float) -> np.ndarray:
    side = square[2] - square[0]
    cx, cy = (square[0] + square[2]) / 2, (square[1] + square[3]) / 2
    reach = int(np.ceil(side * 0.75)) + 1  # half the diagonal: every pixel the turned square can need
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = clip_box((int(cx) - reach, int(cy) - reach, int(cx) + reach + 1, int(cy) + reach + 1), w, h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((side, side), np.uint8)
    gray = to_gray(frame[y0:y1, x0:x1])
    m = cv2.getRotationMatrix2D((cx - x0, cy - y0), roll, 1.0)
    m[:, 2] += (side / 2 - (cx - x0), side / 2 - (cy - y0))
    return cv2.warpAffine(gray, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)

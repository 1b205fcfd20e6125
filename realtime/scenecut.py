"""Scene cuts in video: where one shot ends and the next begins, so that no face track crosses it.

A cut replaces most of the picture from one frame to the next; motion within a shot changes part of it. The
score of a frame is the mean absolute difference of hue, saturation and value (OpenCV's 8-bit HSV) between it
and the frame before, both shrunk to 64x48 pixels: the measure of PySceneDetect's ContentDetector, on a
thumbnail. A frame that scores ``THRESHOLD`` or more starts a new shot, and so does a frame of another size
than the one before (another source).

Measured on every frame of the videos in ``../shared/media`` and ``samples/`` (Hamilton clip, group_pan.mp4,
portraits.mp4, faceapi_test_video.mp4; 476 frame pairs): the five cuts, Hamilton frames 20, 82 and 211 and
group_pan 50 and 100 (each the first frame of a new shot, checked by eye), score 47-67; every other pair scores
18.8 or less (the highest: dim shots of a moving head and a waving hand, where the hue of dark pixels is
noisy). The threshold, 30, lies between the two. It costs 0.1-0.3 ms a frame at any size (measured at 640x480
and 1920x1080 on a shared 2-core machine).
"""
from __future__ import annotations

import cv2
import numpy as np

THRESHOLD = 30.0
THUMBNAIL = (64, 48)  # width, height


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A BGR uint8 frame shrunk to THUMBNAIL, in HSV, as int16 (so that differences do not wrap). Sampled on a
    grid twice as fine, then averaged 2x2: as good as averaging every pixel here (scores within 1), and 0.04
    ms at any frame size where OpenCV's area average takes 0.6 ms at 640x480 and 15 ms at 1920x1080."""
    grid = cv2.resize(frame, (2 * THUMBNAIL[0], 2 * THUMBNAIL[1]), interpolation=cv2.INTER_NEAREST)
    small = cv2.resize(grid, THUMBNAIL, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2HSV).astype(np.int16)


def content_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails' hue, saturation and value (0-255 scale; 0: the same)."""
    return float(np.abs(a - b).mean())


class SceneCuts:
    """Feed it a video's frames in order; ``is_cut`` says whether a frame starts a new shot."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self._previous: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None
        self.score: float | None = None  # the last frame's score; None for a first frame or a new size

    def reset(self) -> None:
        """Forget the previous frame (a new video): the next frame is a first frame, not a cut."""
        self._previous = self._shape = self.score = None

    def is_cut(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` starts a new shot: it differs from the frame fed before it by ``threshold`` or
        more, or has another size. The first frame after a reset is no cut (there is nothing to cut from)."""
        current = thumbnail(frame)
        previous, shape = self._previous, self._shape
        self._previous, self._shape = current, frame.shape
        if previous is None:
            self.score = None
            return False
        if shape != frame.shape:
            self.score = None
            return True
        self.score = content_change(previous, current)
        return self.score >= self.threshold

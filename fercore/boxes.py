"""Face boxes in pixels: (x0, y0, x1, y1) with x1 and y1 exclusive."""
from __future__ import annotations

Box = tuple[int, int, int, int]


def clip_box(box: Box, width: int, height: int) -> Box:
    """The part of a box inside a width x height frame (may be empty: x1 <= x0 or y1 <= y0)."""
    x0, y0, x1, y1 = box
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union

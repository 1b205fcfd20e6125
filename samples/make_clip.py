"""Remake samples/portraits.mp4 from the two photos in samples/photos (see SOURCE.md).

    python samples/make_clip.py

The two portraits side by side, filmed by a slow virtual pan and zoom: 50 frames, 480x270, 25 fps, mp4v.
Real faces, synthetic motion; small enough to ship, long enough for tracking to give each face one id.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
FRAMES, FPS, SIZE = 50, 25.0, (480, 270)


# A square around each face (x0, y0, side), so both faces are about 100 pixels wide in the clip.
CROPS = {"astronaut.jpg": (105, 10, 240), "grace_hopper.jpg": (28, 3, 480)}


def composite(height: int = SIZE[1]) -> np.ndarray:
    """Both faces, cropped to squares and scaled to one height, side by side."""
    squares = []
    for name, (x0, y0, side) in CROPS.items():
        photo = cv2.imread(str(HERE / "photos" / name))
        squares.append(cv2.resize(photo[y0:y0 + side, x0:x0 + side], (height, height), interpolation=cv2.INTER_AREA))
    return np.hstack(squares)


def main() -> None:
    canvas = composite()
    h, w = canvas.shape[:2]
    out = HERE / "portraits.mp4"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for i in range(FRAMES):
        t = i / (FRAMES - 1)
        zoom = 1.0 - 0.15 * t  # the view narrows from the whole canvas to 85% of it
        vw, vh = w * zoom, h * zoom
        x0, y0 = (w - vw) * t, (h - vh) * 0.5 * t  # and drifts right and down
        m = np.float32([[SIZE[0] / vw, 0, -x0 * SIZE[0] / vw], [0, SIZE[1] / vh, -y0 * SIZE[1] / vh]])
        writer.write(cv2.warpAffine(canvas, m, SIZE, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

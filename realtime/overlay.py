"""Drawing results onto frames: box, label and confidence, per-class probability bars, FPS."""
from __future__ import annotations

import cv2
import numpy as np

from realtime.results import FaceResult

# BGR; classes a checkpoint names beyond FER-2013's seven get the fallback colours in turn.
EMOTION_COLORS = {"angry": (40, 40, 220), "disgust": (40, 150, 40), "fear": (160, 50, 160),
                  "happy": (0, 200, 255), "sad": (200, 110, 30), "surprise": (0, 140, 255),
                  "neutral": (170, 170, 170)}
_FALLBACK = [(255, 200, 0), (0, 255, 200), (200, 0, 255), (128, 128, 255)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


def emotion_color(label: str, classes: list[str]) -> tuple[int, int, int]:
    if label in EMOTION_COLORS:
        return EMOTION_COLORS[label]
    return _FALLBACK[classes.index(label) % len(_FALLBACK)] if label in classes else _FALLBACK[0]


def _scale(frame: np.ndarray) -> float:
    """Text and line size that stays readable from a thumbnail to a 4K photo."""
    return max(0.4, min(frame.shape[:2]) / 960)


def _text_box(frame: np.ndarray, text: str, x: int, y: int, s: float, bg: tuple[int, int, int],
              fg: tuple[int, int, int] = (0, 0, 0)) -> None:
    """Text on a filled rectangle whose top-left corner is (x, y), moved inside the frame."""
    th = max(1, round(s * 1.5))
    (tw, tht), base = cv2.getTextSize(text, FONT, s, th)
    pad = max(2, round(3 * s))
    x = min(max(0, x), max(0, frame.shape[1] - tw - 2 * pad))
    y = min(max(0, y), max(0, frame.shape[0] - tht - base - 2 * pad))
    cv2.rectangle(frame, (x, y), (x + tw + 2 * pad, y + tht + base + 2 * pad), bg, cv2.FILLED)
    cv2.putText(frame, text, (x + pad, y + pad + tht), FONT, s, fg, th, cv2.LINE_AA)


def _bars(frame: np.ndarray, face: FaceResult, classes: list[str], s: float) -> None:
    """One bar per class beside the box: right of it if there is room, else left, else inside."""
    fs = 0.8 * s
    row = max(8, round(15 * s))
    name_w = max(cv2.getTextSize(c[:3], FONT, fs, 1)[0][0] for c in classes)
    bar_w = round(80 * s)
    pad = max(2, round(3 * s))
    panel_w, panel_h = name_w + bar_w + 3 * pad, row * len(classes) + 2 * pad
    x0, y0, x1, _ = face.box
    h, w = frame.shape[:2]
    px = x1 + pad if x1 + pad + panel_w <= w else (x0 - pad - panel_w if x0 - pad - panel_w >= 0 else x0)
    py = min(max(0, y0), max(0, h - panel_h))
    cv2.rectangle(frame, (px, py), (px + panel_w, py + panel_h), (30, 30, 30), cv2.FILLED)
    for i, c in enumerate(classes):
        top = py + pad + i * row
        cv2.putText(frame, c[:3], (px + pad, top + row - pad), FONT, fs, (235, 235, 235), 1, cv2.LINE_AA)
        bx = px + 2 * pad + name_w
        cv2.rectangle(frame, (bx, top + 2), (bx + bar_w, top + row - 2), (70, 70, 70), cv2.FILLED)  # the 100% track
        length = round(bar_w * face.probabilities[c])
        cv2.rectangle(frame, (bx, top + 2), (bx + length, top + row - 2), emotion_color(c, classes), cv2.FILLED)


def draw_faces(frame: np.ndarray, faces: list[FaceResult], classes: list[str]) -> None:
    """Draw every face's box, label, confidence, track and probability bars onto ``frame`` in place."""
    s = _scale(frame)
    for face in faces:  # bars first: in a crowd a neighbour's panel must not cover a box or its label
        _bars(frame, face, classes, s)
    for face in faces:
        color = emotion_color(face.label, classes)
        x0, y0, x1, y1 = face.box
        cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), color, max(2, round(2 * s)))
        label = f"{face.label} {face.confidence:.0%} #{face.track}"
        label_h = cv2.getTextSize(label, FONT, s, 1)[0][1] + round(10 * s)
        _text_box(frame, label, x0, y0 - label_h if y0 >= label_h else y1, s, color)


def draw_fps(frame: np.ndarray, fps: float) -> None:
    _text_box(frame, f"FPS {fps:.1f}", 0, 0, _scale(frame), (0, 0, 0), (255, 255, 255))

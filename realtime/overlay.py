"""Drawing results onto frames: box, label and confidence, per-class probability bars, FPS.

Placement is computed first (``layout``, plain rectangles) and drawn second, so that in a group every label
and panel is put where it covers no other face, label or panel if the frame has such a place, and always
stays inside the frame; a test checks the geometry on real group photos.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fercore.boxes import Box
from realtime.results import FaceResult

# BGR; classes a checkpoint names beyond FER-2013's seven get the fallback colours in turn.
EMOTION_COLORS = {"angry": (40, 40, 220), "disgust": (40, 150, 40), "fear": (160, 50, 160),
                  "happy": (0, 200, 255), "sad": (200, 110, 30), "surprise": (0, 140, 255),
                  "neutral": (170, 170, 170)}
UNCERTAIN_COLOR = (128, 128, 128)
_FALLBACK = [(255, 200, 0), (0, 255, 200), (200, 0, 255), (128, 128, 255)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


def emotion_color(label: str | None, classes: list[str]) -> tuple[int, int, int]:
    if label is None:
        return UNCERTAIN_COLOR
    if label in EMOTION_COLORS:
        return EMOTION_COLORS[label]
    return _FALLBACK[classes.index(label) % len(_FALLBACK)] if label in classes else _FALLBACK[0]


def held_color(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """The dimmer colour of a label held from earlier frames: half as bright."""
    return tuple(c // 2 for c in color)


def face_color(face: FaceResult, classes: list[str]) -> tuple[int, int, int]:
    """The colour of a face's box and label: its emotion's, dimmed when the label is held."""
    color = emotion_color(face.label, classes)
    return held_color(color) if face.held else color


def _scale(frame_shape: tuple[int, ...]) -> float:
    """Text and line size that stays readable from a thumbnail to a 4K photo."""
    return max(0.4, min(frame_shape[:2]) / 960)


def label_text(face: FaceResult) -> str:
    """"happy 83% #2"; "~happy 83% #2" when the label is held from earlier frames through a view that cannot be
    read; for a face the model cannot read "? turned away #2" (no emotion word)."""
    if face.label is None:
        return f"? {face.reason} #{face.track}"
    return f"{'~' if face.held else ''}{face.label} {face.confidence:.0%} #{face.track}"


@dataclass(frozen=True)
class Placement:
    """Where one face's label and probability panel go (None: no panel, the frame is too crowded)."""

    label: Box
    panel: Box | None


def _overlap(a: Box, b: Box) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


def _inside(r: Box, w: int, h: int) -> bool:
    return r[0] >= 0 and r[1] >= 0 and r[2] <= w and r[3] <= h


def _clamp(x: int, y: int, rw: int, rh: int, w: int, h: int) -> Box:
    """A rw x rh rectangle at (x, y), moved inside the frame (pinned to its top-left when larger)."""
    x = min(max(0, x), max(0, w - rw))
    y = min(max(0, y), max(0, h - rh))
    return x, y, min(w, x + rw), min(h, y + rh)


def _best(candidates: list[Box], obstacles: list[Box], w: int, h: int) -> tuple[Box, int]:
    """The candidate inside the frame that covers the least of the obstacles (the first of equals)."""
    inside = [c for c in candidates if _inside(c, w, h)]
    inside = inside or [_clamp(c[0], c[1], c[2] - c[0], c[3] - c[1], w, h) for c in candidates]
    scored = [(sum(_overlap(c, o) for o in obstacles), i, c) for i, c in enumerate(inside)]
    cost, _, rect = min(scored)
    return rect, cost


def _pad(s: float) -> int:
    return max(2, round(3 * s))


def _thickness(s: float) -> int:
    return max(1, round(s * 1.5))


def _text_size(text: str, s: float) -> tuple[int, int]:
    """Width and height of a text on its filled box (what _draw_text draws)."""
    (tw, th), base = cv2.getTextSize(text, FONT, s, _thickness(s))
    return tw + 2 * _pad(s), th + base + 2 * _pad(s)


@dataclass(frozen=True)
class _PanelMetrics:
    """Sizes of a probability panel at scale s: its font, row height, class-name column and padding."""

    font: float
    row: int
    name_w: int
    pad: int

    @classmethod
    def of(cls, classes: list[str], s: float) -> "_PanelMetrics":
        font = 0.8 * s
        return cls(font, max(8, round(15 * s)), max(cv2.getTextSize(c[:3], FONT, font, 1)[0][0] for c in classes),
                   _pad(s))


def _panel_size(classes: list[str], s: float) -> tuple[int, int]:
    m = _PanelMetrics.of(classes, s)
    return m.name_w + round(80 * s) + 3 * m.pad, m.row * len(classes) + 2 * m.pad


def layout(faces: list[FaceResult], classes: list[str], frame_shape: tuple[int, ...]) -> list[Placement]:
    """Label and panel rectangles for every face, inside the frame. Labels sit above or below their box,
    panels beside, below or above it; each goes where it covers the least of other faces' boxes and of what
    was placed before. A panel that would still cover something is left out (the compact form for crowds), and
    an uncertain face has none: its bars would suggest a reading."""
    h, w = frame_shape[:2]
    s = _scale(frame_shape)
    gap = _pad(s)
    pw, ph = _panel_size(classes, s)
    boxes = [f.box for f in faces]
    placed: list[Box] = []
    labels: list[Box] = []
    for i, face in enumerate(faces):  # labels first: they matter more than panels
        x0, y0, x1, y1 = face.box
        lw, lh = _text_size(label_text(face), s)
        others = boxes[:i] + boxes[i + 1:]
        candidates = [(x0, y0 - lh, x0 + lw, y0), (x0, y1, x0 + lw, y1 + lh), (x1 - lw, y0 - lh, x1, y0),
                      (x1 - lw, y1, x1, y1 + lh), (x0, y0, x0 + lw, y0 + lh)]
        rect, _ = _best(candidates, others + placed, w, h)
        labels.append(rect)
        placed.append(rect)
    out = []
    for i, face in enumerate(faces):
        if face.label is None:
            out.append(Placement(labels[i], None))
            continue
        x0, y0, x1, y1 = face.box
        own = [face.box, labels[i]]
        others = boxes[:i] + boxes[i + 1:] + [r for r in placed if r != labels[i]]
        candidates = [(x1 + gap, y, x1 + gap + pw, y + ph) for y in (y0, y1 - ph)]
        candidates += [(x0 - gap - pw, y, x0 - gap, y + ph) for y in (y0, y1 - ph)]
        candidates += [(x, y1 + gap, x + pw, y1 + gap + ph) for x in (x0, x1 - pw)]
        candidates += [(x, y0 - gap - ph, x + pw, y0 - gap) for x in (x0, x1 - pw)]
        panel, cost = _best(candidates, others + own, w, h)
        if cost > 0 and len(faces) > 1:
            panel = None
        elif panel is not None:
            placed.append(panel)
        out.append(Placement(labels[i], panel))
    return out


def _draw_text(frame: np.ndarray, rect: Box, text: str, s: float, bg: tuple[int, int, int],
               fg: tuple[int, int, int] = (0, 0, 0)) -> None:
    """A text on a filled box (``rect``, from _text_size) in ``bg``."""
    x0, y0, x1, y1 = rect
    cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), bg, cv2.FILLED)
    (_, th), _ = cv2.getTextSize(text, FONT, s, _thickness(s))
    cv2.putText(frame, text, (x0 + _pad(s), y0 + _pad(s) + th), FONT, s, fg, _thickness(s), cv2.LINE_AA)


def _draw_panel(frame: np.ndarray, rect: Box, face: FaceResult, classes: list[str], s: float) -> None:
    m = _PanelMetrics.of(classes, s)
    fs, row, name_w, pad = m.font, m.row, m.name_w, m.pad
    px, py, px1, py1 = rect
    bar_w = px1 - px - name_w - 3 * pad
    cv2.rectangle(frame, (px, py), (px1 - 1, py1 - 1), (30, 30, 30), cv2.FILLED)
    for i, c in enumerate(classes):
        top = py + pad + i * row
        cv2.putText(frame, c[:3], (px + pad, top + row - pad), FONT, fs, (235, 235, 235), 1, cv2.LINE_AA)
        bx = px + 2 * pad + name_w
        cv2.rectangle(frame, (bx, top + 2), (bx + bar_w, top + row - 2), (70, 70, 70), cv2.FILLED)  # the 100% track
        length = round(bar_w * face.probabilities[c])
        cv2.rectangle(frame, (bx, top + 2), (bx + length, top + row - 2), emotion_color(c, classes), cv2.FILLED)


def draw_faces(frame: np.ndarray, faces: list[FaceResult], classes: list[str]) -> None:
    """Draw every face's box, label, confidence, track and probability bars onto ``frame`` in place; a label
    held from earlier frames is dimmer, in white letters, and marked "~"."""
    s = _scale(frame.shape)
    placements = layout(faces, classes, frame.shape)
    for face, place in zip(faces, placements):
        if place.panel is not None:
            _draw_panel(frame, place.panel, face, classes, s)
    for face in faces:
        x0, y0, x1, y1 = face.box
        cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), face_color(face, classes), max(2, round(2 * s)))
    for face, place in zip(faces, placements):
        color = face_color(face, classes)
        _draw_text(frame, place.label, label_text(face), s, color, (255, 255, 255) if face.held else (0, 0, 0))


def draw_fps(frame: np.ndarray, fps: float) -> None:
    s = _scale(frame.shape)
    text = f"FPS {fps:.1f}"
    rect = _clamp(0, 0, *_text_size(text, s), frame.shape[1], frame.shape[0])
    _draw_text(frame, rect, text, s, (0, 0, 0), (255, 255, 255))

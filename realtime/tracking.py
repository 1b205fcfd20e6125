"""Track ids by box overlap, and per-track smoothing of class probabilities so labels do not flicker."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fercore.boxes import Box, iou


@dataclass
class Track:
    id: int
    box: Box
    probs: np.ndarray  # smoothed
    missed: int = 0  # consecutive frames without a matching face


class Tracker:
    """Greedy IoU matching of each frame's faces to the live tracks, then an exponential moving average.

    ``smoothing`` is the weight kept from the past: 0 turns smoothing off, 0.6 gives a label a few frames of
    inertia at 25-30 fps. A track survives ``max_missed`` frames without a face (a blink of the detector).
    """

    def __init__(self, smoothing: float = 0.6, iou_threshold: float = 0.3, max_missed: int = 10) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget all tracks (a new photo or video); ids start again at 1."""
        self.tracks = []
        self._next_id = 1

    def update(self, boxes: list[Box], probs: np.ndarray) -> list[Track]:
        """The track of each box, in the order of ``boxes``, with its probabilities smoothed."""
        pairs = sorted(((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
                       reverse=True)
        match: dict[int, Track] = {}
        used: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti not in used and bi not in match:
                used.add(ti)
                match[bi] = self.tracks[ti]
        for ti, track in enumerate(self.tracks):
            if ti not in used:
                track.missed += 1
        out = []
        for bi, box in enumerate(boxes):
            track = match.get(bi)
            if track is None:
                track = Track(self._next_id, box, probs[bi].copy())
                self._next_id += 1
                self.tracks.append(track)
            else:
                track.box, track.missed = box, 0
                track.probs = self.smoothing * track.probs + (1.0 - self.smoothing) * probs[bi]
            out.append(track)
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out

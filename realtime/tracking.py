"""Track ids by box overlap, and the evidence each track gathers about its face's emotion over time.

Each frame's reading of a face comes with a weight, what it is worth: ``realtime.pipeline`` gives a view it can
read (frontal enough, large and sharp enough) its calibrated confidence, and a blurred or turned-away view a
tenth of that. A track keeps a weighted average of its frames' probabilities in which older frames fade as newer
evidence replaces them: a frame of weight ``w`` keeps ``smoothing ** w`` of what came before and adds its own
probabilities with weight ``w``. A new track starts from its first reading as if it had been seen as long as
``smoothing`` remembers.

So ``smoothing`` is the share of the past a frame of full weight keeps: with weight 1 in every frame this is an
exponential moving average (0.6 gives a label a few frames of inertia at 25-30 fps; 0 replaces the past with
every frame: no smoothing, no evidence over time). A bad frame (weight 0.05 keeps 0.6 ** 0.05 = 97.5% of the
past) barely moves what good frames established.

The track also keeps the part of its evidence that came from readable views (``good_share``): the pipeline
labels a track through a bad frame while most of its evidence is good, and stops once bad frames have replaced
most of it: after a run of good frames, 16 to 30 bad ones in a row at smoothing 0.6 (the more confident the
good frames, the fewer), about a second at 25-30 fps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fercore.boxes import Box, iou


@dataclass
class Track:
    id: int
    box: Box
    evidence: np.ndarray  # weighted sum of the frames' probabilities, faded (see the module's docstring)
    total: float  # the sum of the faded weights (what ``evidence`` is divided by)
    good: float  # the part of ``total`` that came from readable views
    missed: int = 0  # consecutive frames without a matching face
    seen: int = 1  # frames with a matching face

    @property
    def probs(self) -> np.ndarray:
        """The track's probabilities: its frames' weighted average."""
        return self.evidence / self.total

    @property
    def good_share(self) -> float:
        """Share of the evidence that came from readable views (1.0: all of it)."""
        return self.good / self.total

    def add(self, probs: np.ndarray, weight: float, readable: bool, smoothing: float) -> None:
        """One frame's reading: the past fades by ``smoothing ** weight``, the reading comes in with ``weight``."""
        keep = smoothing ** weight
        self.evidence = keep * self.evidence + weight * probs
        self.total = keep * self.total + weight
        self.good = keep * self.good + (weight if readable else 0.0)


# The weight of a frame that brings no information is never exactly 0 (it would leave a new track empty).
MIN_WEIGHT = 1e-6


class Tracker:
    """Greedy IoU matching of each frame's faces to the live tracks, then each track's evidence updated.

    ``smoothing`` is the share of a track's past a frame of full weight keeps (see the module's docstring). A
    track survives ``max_missed`` frames without a face (a blink of the detector).
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

    def end_all(self) -> None:
        """End every track (a scene cut): no face is matched across it; new faces get new ids, so that ids stay
        unique within a video."""
        self.tracks = []

    def update(self, boxes: list[Box], probs: np.ndarray, weights: np.ndarray | None = None,
               readable: list[bool] | None = None) -> list[Track]:
        """The track of each box, in the order of ``boxes``, with the frame's probabilities added to its evidence.
        ``weights`` (default 1) say what each reading is worth, ``readable`` (default True) whether its view
        could be read on its own."""
        weights = np.ones(len(boxes)) if weights is None else np.maximum(np.asarray(weights, float), MIN_WEIGHT)
        readable = [True] * len(boxes) if readable is None else readable
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
            w, ok = float(weights[bi]), bool(readable[bi])
            if track is None:  # the first reading as if seen as long as smoothing remembers
                w /= 1.0 - self.smoothing
                track = Track(self._next_id, box, w * probs[bi].astype(np.float64), w, w if ok else 0.0)
                self._next_id += 1
                self.tracks.append(track)
            else:
                track.box, track.missed = box, 0
                track.seen += 1
                track.add(probs[bi], w, ok, self.smoothing)
            out.append(track)
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out

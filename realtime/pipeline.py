"""One frame in, plain results out: detect, crop, classify (one batch), track, and say which faces cannot be read
(label None and the reason, fercore.readability) instead of guessing.

In video a face is judged on its track's evidence, not on one frame (realtime.tracking): each frame's reading
counts its calibrated confidence, a tenth of that when the view alone cannot be read (turned away, tilted, too
small or blurred by the model's limits). A track is labelled while most of its evidence comes from readable
views and its averaged probabilities are confident enough; a weak detection waits for its second frame (a box
seen once is most often no face). Through a bad view the label is then *held* (the result says so). Photos,
with one frame per track, are judged exactly as one frame. A scene cut (realtime.scenecut) ends every track."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator, Literal

import numpy as np

from fercore.boxes import clip_box
from fercore.readability import ReadabilityLimits, head_pose, sharpness, unreadable_reason
from models.preprocessing import resize_face
from realtime.classifier import EmotionClassifier
from realtime.detector import Detection, FaceDetector
from realtime.faces import ALIGN_ABOVE_DEGREES, crop_box, gray_crop, readable_part
from realtime.results import FaceResult, FrameResult
from realtime.scenecut import SceneCuts
from realtime.tracking import Track, Tracker

# What a reading of a view that cannot be read on its own counts, against one that can.
BAD_VIEW_WEIGHT = 0.1
# A track is labelled while at least this share of its evidence comes from readable views.
MIN_GOOD_SHARE = 0.5
# In video a box the detector is unsure of (score under 0.5, the short-range detector's own threshold) is
# labelled from its track's second frame on: in the Hamilton clip the boxes seen in one frame only and labelled
# were all something else (a raised fist, hair, a blur; scores 0.30-0.39), and a real face waits one frame.
MIN_FRAMES = 2
SURE_DETECTION = 0.5


class StageTimer:
    """Seconds spent per named stage, summed over calls; the benchmark reads it, the app ignores it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


class Pipeline:
    """The path every entry point shares. ``margin`` widens face boxes before cropping (see faces.crop_box);
    None takes the margin the model was trained for, from its checkpoint. ``limits`` say which faces are too
    turned away, tilted, small, blurred or unsure to label: by default the model's own (the classifier's),
    None labels every face. ``align`` turns each crop tilted past 15 degrees with the head so the eyes are level,
    and then tilt is no reason to refuse a face: it helps on FER-2013 faces turned in the plane of the picture,
    but on real footage the eye line of a three-quarter or nodding face is no measure of its tilt, hence off by
    default (docs/readability.md)."""

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier, tracker: Tracker,
                 margin: float | None = None, limits: ReadabilityLimits | None | Literal["model"] = "model",
                 align: bool = False) -> None:
        self.detector = detector
        self.classifier = classifier
        self.tracker = tracker
        self.margin = classifier.preprocessing.margin if margin is None else margin
        self.limits = classifier.limits if limits == "model" else limits
        self.align = align
        self.classes = list(classifier.classes)
        self.timer = StageTimer()
        self.cuts = SceneCuts()

    def process(self, frame: np.ndarray, index: int, time_s: float | None = None,
                source: str | None = None) -> FrameResult:
        """Results for a BGR uint8 frame. Video frames need ``time_s`` (frames of one video in order: a scene cut
        ends every track); photos pass None (and reset tracking)."""
        h, w = frame.shape[:2]
        cut = False
        if time_s is None:
            self.cuts.reset()
        else:
            with self.timer("cut"):
                cut = self.cuts.is_cut(frame)
        with self.timer("detect"):
            detections = self.detector.detect(frame, None if time_s is None else round(time_s * 1000))
        with self.timer("crop"):
            kept = [d for d in detections if readable_part(d.box, w, h)]
            faces = [self.face_crop(frame, d) for d in kept]
        with self.timer("classify"):
            probs = self.classifier.predict(faces)
        with self.timer("track"):
            if time_s is None:
                self.tracker.reset()
            elif cut:
                self.tracker.end_all()
            boxes = [clip_box(d.box, w, h) for d in kept]
            reasons = [self._unreadable(d, face, float(p.max())) for d, face, p in zip(kept, faces, probs)]
            readable = [r in (None, "unsure") for r in reasons]  # the view: "unsure" is about the reading
            weights = [float(p.max()) * (1.0 if ok else BAD_VIEW_WEIGHT) for p, ok in zip(probs, readable)]
            tracks = self.tracker.update(boxes, probs, np.array(weights), readable)
            results = []
            for d, box, view_reason, ok, weight, track in zip(kept, boxes, reasons, readable, weights, tracks):
                p = {c: float(v) for c, v in zip(self.classes, track.probs)}
                label = max(p, key=p.get)
                new = time_s is not None and track.seen < MIN_FRAMES and d.score < SURE_DETECTION
                reason, held = self._judge(track, p[label], view_reason, ok, new)
                results.append(FaceResult(track.id, box, d.score, None if reason else label, p[label], p, reason,
                                          held=held, weight=weight))
        return FrameResult(index, time_s, results, source, cut=cut)

    def _judge(self, track: Track, confidence: float, view_reason: str | None, readable: bool, new: bool
               ) -> tuple[str | None, bool]:
        """(why the face gets no label or None, whether its label is held through a view that cannot be read).
        ``new``: a weak detection in a video, not seen long enough to be labelled."""
        if self.limits is None:
            return None, False
        if not new and track.good_share >= MIN_GOOD_SHARE and confidence >= self.limits.min_confidence:
            return None, not readable
        return (view_reason if not readable else "unsure"), False

    def face_crop(self, frame: np.ndarray, detection: Detection) -> np.ndarray:
        """The grayscale square the model reads for a detection: its box widened by the margin, turned upright
        when ``align`` and the detector gave keypoints (realtime.commands.crop_faces cuts training faces with it
        too)."""
        roll = head_pose(detection.keypoints)[1] if self.align and len(detection.keypoints) >= 6 else 0.0
        return gray_crop(frame, crop_box(detection.box, self.margin), roll)

    def _unreadable(self, detection: Detection, face: np.ndarray, confidence: float) -> str | None:
        if self.limits is None:
            return None
        x0, y0, x1, y1 = detection.box
        pose = head_pose(detection.keypoints) if len(detection.keypoints) >= 6 else None
        if pose is not None and self.align and abs(pose[1]) > ALIGN_ABOVE_DEGREES:
            pose = (pose[0], 0.0)  # the crop was turned upright
        return unreadable_reason(self.limits, size=min(x1 - x0, y1 - y0), confidence=confidence, pose=pose,
                                 sharp=sharpness(resize_face(face, self.classifier.preprocessing.size)))

    def close(self) -> None:
        self.detector.close()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

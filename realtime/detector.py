"""MediaPipe Tasks face detection with the model files shipped in weights/, so the app works offline."""
from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401  (its exit hook is registered before ours, see _OPEN)
import os
import re
import sys
import tempfile
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import cv2
import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions, vision

from fercore.boxes import Box, iou
from fercore.paths import DETECTOR_MODELS, WEIGHTS



# An interrupt (Ctrl-C, or SIGTERM and SIGHUP raised like it) that lands inside mp.Image's constructor before it
# sets _image_ptr leaves a half-built image whose finaliser fails, printing a traceback on the way out; this
# class-level default lets that finaliser see nothing to free (every finished image sets its own).
mp.Image._image_ptr = None


class DetectorError(RuntimeError):
    """The face-detector model is missing or is not a MediaPipe face-detection model."""


# BlazeFace's six keypoints, in its order.
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True)
class Detection:
    box: Box  # may reach outside the frame for faces cut by its edge
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()  # (x, y) pixels in KEYPOINTS order; the subject's right eye first


# What MediaPipe's native code writes on start-up and at some frames: its INFO lines, glog's INFO/WARNING lines
# (e.g. "Input tensor memory is not aligned ..."), glog's notice that it logs before InitGoogle, and LiteRT's
# warnings that name their source file (46 lines of "WARNING: [model_load.cc:402] Sparsity tensors may not yet be
# fully supported." each time the full-range model is loaded). Errors are never held back.
_NATIVE_NOISE = re.compile(r"^(INFO: |WARNING: Logging before InitGoogle|WARNING: \[[\w./-]+\.cc:\d+\] |[IW]\d{4} )")


_HOLD_LOCK = threading.Lock()
_hold = {"depth": 0, "saved": -1, "failed": False}  # threads inside _native_logs_held_back, the real stderr


@contextmanager
def _native_logs_held_back() -> Iterator[None]:
    """Hold back MediaPipe's native chatter on stderr (dozens of lines on start-up, an alignment warning at some
    frame). Whatever else reached stderr meanwhile (errors, other threads' output) is replayed afterwards; if a
    block fails, everything is replayed, since it may explain why.

    File descriptor 2 is one per process, so threads share one hold: the first to enter points stderr at the
    held file, the last to leave points it back and replays; the lock keeps the two from interleaving. It costs
    a few system calls (about 10 microseconds), little enough to wrap every detection.
    """
    fd = _held_logs().fileno()
    with _HOLD_LOCK:
        if _hold["depth"] == 0:
            sys.stderr.flush()
            _hold["saved"] = os.dup(2)
            os.dup2(fd, 2)
        _hold["depth"] += 1
    try:
        yield
    except BaseException:
        _hold["failed"] = True
        raise
    finally:
        with _HOLD_LOCK:
            _hold["depth"] -= 1
            if _hold["depth"] == 0:
                os.dup2(_hold["saved"], 2)
                os.close(_hold["saved"])
                _replay(fd, _hold["failed"])
                _hold["failed"] = False


def _replay(fd: int, everything: bool) -> None:
    """Write what the held file caught to the real stderr (less MediaPipe's noise, unless ``everything``) and
    empty it."""
    size = os.lseek(fd, 0, os.SEEK_CUR)
    if size:
        os.lseek(fd, 0, os.SEEK_SET)
        lines = os.read(fd, size).decode(errors="replace").splitlines(keepends=True)
        kept = lines if everything else [line for line in lines if not _NATIVE_NOISE.match(line)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)


@lru_cache(maxsize=1)
def _held_logs():
    """The file that receives held-back native logs, opened once."""
    return tempfile.TemporaryFile()


def resolve_detector_model(model: str | Path) -> Path:
    """A model name from DETECTOR_MODELS or a path to a .tflite file."""
    path = DETECTOR_MODELS.get(str(model), Path(model))
    if not path.is_file():
        raise DetectorError(f"face-detector model not found: {path} (choose 'short', 'full' or a .tflite path; "
                            f"the repository ships both in {WEIGHTS})")
    return path


@dataclass(frozen=True)
class DetectorSpec:
    """A BlazeFace model, the threshold it is used at unless told otherwise, and what a photo that may be a
    close-up (a face that fills the image) gets: a second look on a padded frame, then another detector where
    both looks find nothing."""
    model: str  # a name in DETECTOR_MODELS or a .tflite path
    min_confidence: float = 0.5  # default threshold (docs/detection.md)
    pad_closeups: bool = False
    closeup_fallback: str | None = None  # a name in DETECTORS, run at its own threshold
    about: str = ""


# The named detectors, with the threshold each is used at unless told otherwise. Measured with
# `python -m tools.detector_eval` on the hand-labelled faces in realtime/face_boxes.json (docs/detection.md): the
# full-range model at 0.3 found all readable faces there with no false positive (its real faces score 0.34 and
# up, its false ones 0.27 at most); the short-range model is 4x faster but misses small faces and boxes a wall
# and a blurred building at 0.51-0.61, scores its real faces also reach. Merging both, tiling the frame, or a
# second look at a crop found no more faces than "full" at 0.3 and added false ones or lost real profiles.
# The full-range model misses many faces that fill the image (finds none, or only part of one); on the photo
# padded by CLOSEUP_PAD per side it finds them, so a photo whose best detection scores under CLOSEUP_BELOW, or
# whose one detection covers CLOSEUP_AREA of it, gets that second look, its boxes merged with the first; where
# both looks find nothing, the short-range model, which finds close-ups well, has the last word
# (docs/detection.md, "Close-ups").
DETECTORS = {
    "short": DetectorSpec("short", min_confidence=0.5,
                          about="short-range model: fastest (2 ms), for faces within about 2 m of a camera"),
    "full": DetectorSpec("full", min_confidence=0.3, pad_closeups=True, closeup_fallback="short",
                         about="full-range model: every face from close-ups to small and distant ones (8 ms)"),
}
CLOSEUP_PAD = 0.5  # share of the width and height added on each side for a photo's second look
CLOSEUP_BELOW = 0.6  # a photo whose best detection scores less gets the second look
CLOSEUP_AREA = 0.15  # ... as does one whose only detection covers this share of it (maybe part of a big face)
MERGE_IOU = 0.3  # boxes of the two looks overlapping this much are one face (the better score is kept)


def resolve_detector(detector: str | Path) -> tuple[str, DetectorSpec]:
    """The name and spec of a detector: a name from DETECTORS or a path to a .tflite model."""
    name = str(detector)
    if name in DETECTORS:
        return name, DETECTORS[name]
    if name.endswith(".tflite") or "/" in name or os.sep in name or Path(name).is_file():
        resolve_detector_model(name)
        return name, DetectorSpec(name)
    raise DetectorError(f"unknown face detector {name!r}: choose {', '.join(DETECTORS)} or a .tflite path")


# Detectors not closed yet. At exit they are closed while MediaPipe still can: left to MediaPipe's own finaliser,
# which runs during interpreter teardown after the modules it calls are gone, an unclosed detector ends the
# program with "Exception ignored in: <function FaceDetector.__del__ ...> TypeError". MediaPipe closes through a
# thread pool, so this runs among the thread-shutdown hooks (last registered, first run), before the pools stop.
_OPEN: "weakref.WeakSet[FaceDetector]" = weakref.WeakSet()


def _close_open_detectors() -> None:
    for detector in list(_OPEN):
        detector.close()


getattr(threading, "_register_atexit", atexit.register)(_close_open_detectors)


class FaceDetector:
    """BlazeFace via MediaPipe Tasks. VIDEO mode for streams (needs increasing timestamps), IMAGE mode for photos.

    ``model`` names a detector from DETECTORS or a .tflite path; ``min_confidence`` None takes the detector's
    measured default. Takes BGR uint8 frames, the layout OpenCV reads, and returns boxes in pixels, best score
    first. In IMAGE mode a detector with ``pad_closeups`` looks again, with a border added (CLOSEUP_PAD), at a
    photo that may be a close-up (see _maybe_closeup), and asks its ``closeup_fallback`` detector where both looks
    find nothing, so a face that fills the photo is found.
    """

    def __init__(self, model: str | Path = "short", video: bool = True, min_confidence: float | None = None) -> None:
        self.name, self.spec = resolve_detector(model)
        self.min_confidence = self.spec.min_confidence if min_confidence is None else float(min_confidence)
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.video = video
        self.model_path = resolve_detector_model(self.spec.model)
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            min_detection_confidence=self.min_confidence)
        try:
            with _native_logs_held_back():
                self._detector = vision.FaceDetector.create_from_options(options)
        except (ValueError, RuntimeError) as exc:
            raise DetectorError(f"{self.model_path} is not a usable MediaPipe face-detection model "
                                f"({str(exc).splitlines()[0]})") from exc
        self._last_ms = -1
        self._fallback: FaceDetector | None = None  # made on first need
        _OPEN.add(self)

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None) -> list[Detection]:
        """Faces in a BGR uint8 frame; in VIDEO mode ``timestamp_ms`` is the frame's time (forced to increase)."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        if self._detector is None:
            raise ValueError("the face detector is closed")
        if self.video:
            if timestamp_ms is None:
                raise ValueError("a VIDEO-mode detector needs each frame's timestamp_ms")
            # MediaPipe rejects a timestamp that does not increase (a camera clock can repeat one).
            self._last_ms = max(int(timestamp_ms), self._last_ms + 1)
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        found = self._run(rgb)
        if not self.video and self.spec.pad_closeups and _maybe_closeup(found, frame.shape[1], frame.shape[0]):
            found = merge(found + self._padded(rgb))
            if not found and self.spec.closeup_fallback:
                if self._fallback is None:
                    self._fallback = FaceDetector(self.spec.closeup_fallback, video=False)
                found = self._fallback.detect(frame)
        return sorted(found, key=lambda d: d.score, reverse=True)

    def _run(self, rgb: np.ndarray, x0: int = 0, y0: int = 0) -> list[Detection]:
        """The model on an RGB image whose top-left corner lies at (x0, y0) of the frame, in frame pixels."""
        h, w = rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with _native_logs_held_back():
            result = (self._detector.detect_for_video(image, self._last_ms) if self.video
                      else self._detector.detect(image))
        return _detections(result, x0, y0, w, h)

    def _padded(self, rgb: np.ndarray) -> list[Detection]:
        """The second look for a close-up: the photo with a black border of CLOSEUP_PAD per side."""
        h, w = rgb.shape[:2]
        px, py = round(w * CLOSEUP_PAD), round(h * CLOSEUP_PAD)
        padded = cv2.copyMakeBorder(rgb, py, py, px, px, cv2.BORDER_CONSTANT)
        return self._run(padded, -px, -py)

    def close(self) -> None:
        """Release the MediaPipe detector. Idempotent."""
        detector, self._detector = self.__dict__.get("_detector"), None
        if detector is not None:
            with _native_logs_held_back():
                detector.close()
        fallback, self._fallback = self.__dict__.get("_fallback"), None
        if fallback is not None:
            fallback.close()

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _maybe_closeup(found: list[Detection], width: int, height: int) -> bool:
    """Whether a photo's first look may have missed a face that fills it: no detection scoring CLOSEUP_BELOW, or
    a single one covering CLOSEUP_AREA of the photo (the model often boxes only part of such a face)."""
    if max((d.score for d in found), default=0.0) < CLOSEUP_BELOW:
        return True
    if len(found) != 1:
        return False
    x0, y0, x1, y1 = found[0].box
    return (x1 - x0) * (y1 - y0) >= CLOSEUP_AREA * width * height


def merge(detections: list[Detection], iou_threshold: float = MERGE_IOU) -> list[Detection]:
    """Non-maximum suppression: best score first, dropping any box that overlaps a kept one by ``iou_threshold``."""
    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(iou(d.box, k.box) < iou_threshold for k in kept):
            kept.append(d)
    return kept


def _detections(result, x0: int, y0: int, w: int, h: int) -> list[Detection]:
    """MediaPipe's detections on a w x h image placed at (x0, y0) of the frame, in frame pixels."""
    out = []
    for d in result.detections:
        b = d.bounding_box
        points = tuple((x0 + k.x * w, y0 + k.y * h) for k in d.keypoints or ())
        out.append(Detection((x0 + b.origin_x, y0 + b.origin_y, x0 + b.origin_x + b.width, y0 + b.origin_y + b.height),
                             float(d.categories[0].score), points))
    return out

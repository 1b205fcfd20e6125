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

from fercore.boxes import Box
from fercore.paths import DETECTOR_MODELS, WEIGHTS



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
# (e.g. "Input tensor memory is not aligned ...") and glog's notice that it logs before InitGoogle.
_NATIVE_NOISE = re.compile(r"^(INFO: |WARNING: Logging before InitGoogle|[IW]\d{4} )")


@contextmanager
def _native_logs_held_back() -> Iterator[None]:
    """Hold back MediaPipe's native chatter on stderr (dozens of lines on start-up, an alignment warning at some
    frame). Whatever else reached stderr meanwhile (errors, other threads' output) is replayed afterwards; if the
    block fails, everything is replayed, since it may explain why.

    It costs a few system calls (about 10 microseconds), little enough to wrap every detection.
    """
    fd = _held_logs().fileno()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(fd, 2)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        size = os.lseek(fd, 0, os.SEEK_CUR)
        if size:
            os.lseek(fd, 0, os.SEEK_SET)
            lines = os.read(fd, size).decode(errors="replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines if not _NATIVE_NOISE.match(line)]
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

    Takes BGR uint8 frames, the layout OpenCV reads, and returns boxes in pixels.
    """

    def __init__(self, model: str | Path = "short", video: bool = True, min_confidence: float = 0.5) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.model_path = resolve_detector_model(model)
        self.video = video
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            min_detection_confidence=min_confidence)
        try:
            with _native_logs_held_back():
                self._detector = vision.FaceDetector.create_from_options(options)
        except (ValueError, RuntimeError) as exc:
            raise DetectorError(f"{self.model_path} is not a usable MediaPipe face-detection model "
                                f"({str(exc).splitlines()[0]})") from exc
        self._last_ms = -1
        _OPEN.add(self)

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None) -> list[Detection]:
        """Faces in a BGR uint8 frame; in VIDEO mode ``timestamp_ms`` is the frame's time (forced to increase)."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        with _native_logs_held_back():
            result = self._run(image, timestamp_ms)
        h, w = frame.shape[:2]
        detections = []
        for d in result.detections:
            b = d.bounding_box
            points = tuple((k.x * w, k.y * h) for k in d.keypoints or ())
            detections.append(Detection((b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height),
                                        float(d.categories[0].score), points))
        return detections

    def _run(self, image: mp.Image, timestamp_ms: int | None):
        if not self.video:
            return self._detector.detect(image)
        if timestamp_ms is None:
            raise ValueError("a VIDEO-mode detector needs each frame's timestamp_ms")
        # MediaPipe rejects a timestamp that does not increase (a camera clock can repeat one).
        self._last_ms = max(int(timestamp_ms), self._last_ms + 1)
        return self._detector.detect_for_video(image, self._last_ms)

    def close(self) -> None:
        if self._detector is not None:
            with _native_logs_held_back():
                self._detector.close()
            self._detector = None

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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


@dataclass(frozen=True)
class DetectorSpec:
    """How faces are looked for: which BlazeFace models run on the whole frame, whether the last one also runs on
    overlapping tiles (small faces), whether uncertain detections get a second look, and the threshold it is
    used at unless told otherwise."""
    models: tuple[str, ...]  # names in DETECTOR_MODELS or .tflite paths, each run on the whole frame
    tiles: bool = False  # also run the last model on TILE_GRID overlapping tiles
    min_confidence: float = 0.5  # default threshold (README, "Face detection: which detector, measured")
    # Second look: a detection scoring under `confirm_below` is kept only if the last model, run again on a square
    # crop `confirm_scale` times the box's size around it (the face then fills half the model's input), finds a
    # face there scoring `confirm_min` or more. 0 = no second look.
    confirm_below: float = 0.0
    confirm_min: float = 0.5
    confirm_scale: float = 2.0
    about: str = ""


# The named detectors, with the threshold each is used at unless told otherwise. Measured with
# `python -m realtime.detector_eval` on the hand-labelled faces in realtime/face_boxes.json (README, "Face
# detection: which detector, measured"): the full-range model at 0.3 found all 74 readable faces there with no
# false positive (its real faces score 0.34 and up, its false ones 0.27 at most); the short-range model is 4x
# faster but misses small faces and boxes a wall and a blurred building at 0.51-0.61, scores its real faces also
# reach, so no threshold, size or keypoint rule removes them without losing faces. Merging both or tiling the
# frame found no more faces than "full" at 0.3 and added false ones (hands, statuettes, a close-up's forehead).
# On every frame of the two clips "full" at 0.3 also boxes a few hands and hair (0.30-0.42); a second look at a
# crop ("full+zoom") removes those but also loses real profiles and faces cut by the frame edge.
DETECTORS = {
    "short": DetectorSpec(("short",), min_confidence=0.5,
                          about="short-range model: fastest (2 ms), for faces within about 2 m of a camera"),
    "full": DetectorSpec(("full",), min_confidence=0.3,
                         about="full-range model: every face from close-ups to small and distant ones (8 ms)"),
    "full+zoom": DetectorSpec(("full",), min_confidence=0.3, confirm_below=0.6,
                              about="full-range model; a detection under 0.6 is kept only if a second look at a "
                                    "crop twice its size confirms it (measured: drops stray hands, and also some "
                                    "profiles and faces cut by the frame edge)"),
    "short+full": DetectorSpec(("short", "full"), min_confidence=0.6,
                               about="both models on the whole frame, merged (measured: no better than full)"),
    "full+tiles": DetectorSpec(("full",), tiles=True, min_confidence=0.6,
                               about="full-range model on the whole frame and on 2x2 overlapping tiles, merged "
                                     "(measured: more false positives than full)"),
}
TILE_GRID = (2, 2)  # columns, rows
TILE_OVERLAP = 0.25  # share of a tile that overlaps its neighbour
MERGE_IOU = 0.3  # boxes from different passes overlapping this much are one face (the best score is kept)


def resolve_detector(detector: str | Path) -> tuple[str, DetectorSpec]:
    """The name and spec of a detector: a name from DETECTORS or a path to a .tflite model (run alone)."""
    name = str(detector)
    if name in DETECTORS:
        return name, DETECTORS[name]
    if name.endswith(".tflite") or "/" in name or os.sep in name or Path(name).is_file():
        resolve_detector_model(name)
        return name, DetectorSpec((name,))
    raise DetectorError(f"unknown face detector {name!r}: choose {', '.join(DETECTORS)} or a .tflite path")


def tiles(width: int, height: int, grid: tuple[int, int] = TILE_GRID,
          overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x0, y0, x1, y1) covering a width x height frame, ``grid`` columns by rows."""
    def spans(size: int, n: int) -> list[tuple[int, int]]:
        if n <= 1:
            return [(0, size)]
        tile = round(size / (n - (n - 1) * overlap))
        return [(round(i * (size - tile) / (n - 1)), round(i * (size - tile) / (n - 1)) + tile) for i in range(n)]
    return [(x0, y0, x1, y1) for y0, y1 in spans(height, grid[1]) for x0, x1 in spans(width, grid[0])]


def merge(detections: list[Detection], iou_threshold: float = MERGE_IOU) -> list[Detection]:
    """Non-maximum suppression: best score first, dropping any box that overlaps a kept one by ``iou_threshold``
    or more (intersection over union)."""
    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(iou(d.box, k.box) < iou_threshold for k in kept):
            kept.append(d)
    return kept


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

    ``model`` names a detector from DETECTORS (models on the whole frame, tiles, a second look) or a .tflite
    path; ``min_confidence`` None takes the detector's measured default. Takes BGR uint8 frames, the layout OpenCV
    reads, and returns boxes in pixels, best score first.
    """

    def __init__(self, model: str | Path = "short", video: bool = True, min_confidence: float | None = None) -> None:
        self.name, self.spec = resolve_detector(model)
        self.min_confidence = self.spec.min_confidence if min_confidence is None else float(min_confidence)
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.video = video
        self.model_paths = [resolve_detector_model(m) for m in self.spec.models]
        self.model_path = self.model_paths[0]
        self._detectors: list = []  # one per model on the whole frame, in VIDEO or IMAGE mode
        self._tile_detector = None  # IMAGE mode (tiles of one frame share a timestamp)
        self._confirm_detector = None  # IMAGE mode, at the second look's threshold
        try:
            for path in self.model_paths:
                self._detectors.append(self._create(path, video))
            if self.spec.tiles:
                self._tile_detector = self._detectors[-1] if not video else self._create(self.model_paths[-1], False)
            if self.spec.confirm_below > 0:
                self._confirm_detector = self._create(self.model_paths[-1], False, self.spec.confirm_min)
        except BaseException:
            self.close()
            raise
        self._last_ms = -1
        _OPEN.add(self)

    def _create(self, path: Path, video: bool, min_confidence: float | None = None):
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            min_detection_confidence=self.min_confidence if min_confidence is None else min_confidence)
        try:
            with _native_logs_held_back():
                return vision.FaceDetector.create_from_options(options)
        except (ValueError, RuntimeError) as exc:
            raise DetectorError(f"{path} is not a usable MediaPipe face-detection model "
                                f"({str(exc).splitlines()[0]})") from exc

    @property
    def _detector(self):
        """The first whole-frame MediaPipe detector (None once closed)."""
        return self._detectors[0] if self._detectors else None

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None) -> list[Detection]:
        """Faces in a BGR uint8 frame; in VIDEO mode ``timestamp_ms`` is the frame's time (forced to increase)."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a BGR uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        if not self._detectors:
            raise ValueError("the face detector is closed")
        if self.video:
            if timestamp_ms is None:
                raise ValueError("a VIDEO-mode detector needs each frame's timestamp_ms")
            # MediaPipe rejects a timestamp that does not increase (a camera clock can repeat one).
            self._last_ms = max(int(timestamp_ms), self._last_ms + 1)
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        h, w = frame.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
        found = []
        with _native_logs_held_back():
            for detector in self._detectors:
                result = (detector.detect_for_video(image, self._last_ms) if self.video else detector.detect(image))
                found += _detections(result, 0, 0, w, h)
            if self._tile_detector is not None:
                for x0, y0, x1, y1 in tiles(w, h):
                    tile = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb[y0:y1, x0:x1]))
                    inner = (x0 > 0, y0 > 0, x1 < w, y1 < h)  # tile edges inside the frame
                    found += [d for d in _detections(self._tile_detector.detect(tile), x0, y0, x1 - x0, y1 - y0)
                              if not _crosses(d.box, (x0, y0, x1, y1), inner)]
            if len(self._detectors) > 1 or self._tile_detector is not None:
                found = merge(found)
            if self._confirm_detector is not None:
                found = [d for d in found if d.score >= self.spec.confirm_below or self._confirmed(rgb, d.box)]
        return sorted(found, key=lambda d: d.score, reverse=True)

    CONFIRM_SIZE = 192  # the full-range model's input side

    def _confirmed(self, rgb: np.ndarray, box: Box) -> bool:
        """The second look: whether the model finds a face again in a square crop ``confirm_scale`` times the box
        around it (padded with black beyond the frame), resized to the model's input."""
        side = max(box[2] - box[0], box[3] - box[1]) * self.spec.confirm_scale
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0 = round(cx - side / 2), round(cy - side / 2)
        x1, y1 = x0 + round(side), y0 + round(side)
        h, w = rgb.shape[:2]
        crop = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        crop[max(0, -y0):min(h, y1) - y0, max(0, -x0):min(w, x1) - x0] = rgb[max(0, y0):min(h, y1),
                                                                              max(0, x0):min(w, x1)]
        size = self.CONFIRM_SIZE
        image = mp.Image(image_format=mp.ImageFormat.SRGB,
                         data=cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size
                                         else cv2.INTER_LINEAR))
        k = size / (x1 - x0)
        expected = (round((box[0] - x0) * k), round((box[1] - y0) * k), round((box[2] - x0) * k),
                    round((box[3] - y0) * k))
        return any(iou(d.box, expected) >= MERGE_IOU for d in _detections(self._confirm_detector.detect(image),
                                                                           0, 0, size, size))

    def close(self) -> None:
        """Release the MediaPipe detectors. Idempotent."""
        detectors = [d for d in (*self.__dict__.get("_detectors", ()), self.__dict__.get("_tile_detector"),
                                 self.__dict__.get("_confirm_detector")) if d is not None]
        self._detectors, self._tile_detector, self._confirm_detector = [], None, None
        with _native_logs_held_back():
            for detector in {id(d): d for d in detectors}.values():
                detector.close()

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _detections(result, x0: int, y0: int, w: int, h: int) -> list[Detection]:
    """MediaPipe's detections on a w x h image placed at (x0, y0) of the frame, in frame pixels."""
    out = []
    for d in result.detections:
        b = d.bounding_box
        points = tuple((x0 + k.x * w, y0 + k.y * h) for k in d.keypoints or ())
        out.append(Detection((x0 + b.origin_x, y0 + b.origin_y, x0 + b.origin_x + b.width, y0 + b.origin_y + b.height),
                             float(d.categories[0].score), points))
    return out


def _crosses(box: Box, tile: tuple[int, int, int, int], inner: tuple[bool, bool, bool, bool]) -> bool:
    """Whether a box found in a tile reaches past one of the tile's edges inside the frame: a face cut by the
    tile, whole in the frame pass or a neighbouring tile."""
    return ((inner[0] and box[0] < tile[0]) or (inner[1] and box[1] < tile[1])
            or (inner[2] and box[2] > tile[2]) or (inner[3] and box[3] > tile[3]))

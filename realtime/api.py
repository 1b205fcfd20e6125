"""Emotions from Python in one call: ``EmotionRecognizer``, the pipeline every command uses, with its defaults.

    from realtime import EmotionRecognizer

    with EmotionRecognizer() as fer:
        faces = fer.recognize("photo.jpg")          # a path, a numpy array or a PIL image
        label, confidence = fer.top_emotion(frame)  # the largest face
        for result in fer.stream("clip.mp4"):       # or a camera number: fer.stream(0)
            ...

Faces come back as ``realtime.results.FaceResult``, the type the JSON and CSV files are written from, so
whatever the pipeline adds to it reaches API users too.
"""
from __future__ import annotations

import atexit
import inspect
import os
import sys
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence, Union

import cv2
import numpy as np

from fercore.atomic import not_a_file, printable

from realtime.classifier import load_classifier
from realtime.labelled import subject
from realtime.photos import ImageError, read_image, too_large
from realtime.pipeline import Pipeline
from realtime.results import FaceResult
from realtime.settings import Settings, SourceKind, build_pipeline, checkpoints
from realtime.video_io import (DEFAULT_FPS, STALL_TIMEOUT, STALL_TIMEOUT_RANGE, CaptureError, LatestFrameCapture,
                               VideoError, VideoReader, open_source)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

ImageInput = Union[str, "os.PathLike[str]", np.ndarray, "PILImage"]
Color = Literal["bgr", "rgb"]

__all__ = ["EmotionRecognizer", "Settings", "to_bgr", "ImageError", "VideoError", "CaptureError"]

# Streams not finished yet, of every recognizer. At exit they are closed (their source released, their detector
# closed) while Python still runs normally; a generator left to interpreter teardown would run its cleanup after
# the modules it needs are gone. Registered like realtime.detector's hook, after it, so it runs before it.
_LIVE_STREAMS: weakref.WeakSet = weakref.WeakSet()


def _close_live_streams() -> None:
    for generator in list(_LIVE_STREAMS):
        generator.close()


getattr(threading, "_register_atexit", atexit.register)(_close_live_streams)


def _is_pil_image(image: Any) -> bool:
    """Whether ``image`` is a PIL image; PIL is never imported here (whoever made one has imported it)."""
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(image, pil.Image)


def to_bgr(image: ImageInput, color: Color = "bgr") -> np.ndarray:
    """The BGR uint8 (H, W, 3) frame the pipeline takes, from any input ``EmotionRecognizer`` accepts.

    - a path (str or path-like) to a photo of any format OpenCV reads (EXIF rotation applied);
    - a uint8 numpy array: (H, W) or (H, W, 1) grayscale, (H, W, 3) colour, (H, W, 4) colour with alpha (dropped);
      ``color`` says the channel order of colour arrays: "bgr" (OpenCV's, the default) or "rgb" (PIL, imageio,
      matplotlib, most deep-learning code);
    - a PIL image (any mode; PIL knows its own channel order, so ``color`` is ignored).

    Raises ImageError (a ValueError) for a missing or unreadable file and for an array of the wrong dtype or
    shape, TypeError for anything else.
    """
    if color not in ("bgr", "rgb"):
        raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
    if isinstance(image, (str, os.PathLike)):
        return read_image(Path(image))
    if _is_pil_image(image):
        return _pil_to_bgr(image)
    if isinstance(image, np.ndarray):
        return _array_to_bgr(image, color)
    raise TypeError(f"expected an image path (str or Path), a numpy array or a PIL image, got "
                    f"{type(image).__module__}.{type(image).__qualname__}")


def _pil_to_bgr(image: "PILImage") -> np.ndarray:
    """A PIL image of any mode as BGR. 16- and 32-bit integer images keep their top 8 bits, as OpenCV reads a
    16-bit file (PIL's own convert would clip them to white); a damaged image is an ImageError."""
    try:
        if image.mode.startswith("I"):  # I;16, I;16B, I;16L, I (32-bit)
            gray = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
            return _array_to_bgr(gray, "bgr")
        return _array_to_bgr(np.asarray(image.convert("RGB")), "rgb")
    except (OSError, ValueError, SyntaxError) as exc:  # what PIL raises for truncated or damaged data
        raise ImageError(f"cannot read the PIL image: {exc}") from exc


def _array_to_bgr(a: np.ndarray, color: Color) -> np.ndarray:
    if a.dtype != np.uint8:
        hint = ""
        if np.issubdtype(a.dtype, np.floating):
            hint = "; for floats in [0, 1] use (image * 255).round().astype(np.uint8)"
        elif a.dtype == np.uint16:
            hint = "; for 16-bit images use (image >> 8).astype(np.uint8)"
        raise ImageError(f"expected a uint8 image array, got dtype {a.dtype}{hint}")
    channels = 1 if a.ndim == 2 else a.shape[2] if a.ndim == 3 else None
    if channels not in (1, 3, 4):
        hint = ""
        if a.ndim == 3 and a.shape[0] in (1, 3, 4):
            hint = "; this looks channels-first: pass image.transpose(1, 2, 0)"
        raise ImageError(f"expected an image array of shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}{hint}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"the image array is empty: shape {a.shape}")
    if problem := too_large(a.shape[1], a.shape[0], "the image array"):
        raise ImageError(problem)
    a = np.ascontiguousarray(a)
    if channels == 1:
        return cv2.cvtColor(a.reshape(a.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(a, cv2.COLOR_RGBA2BGR if color == "rgb" else cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(a, cv2.COLOR_RGB2BGR) if color == "rgb" else a


def _is_file_source(source: int | str | os.PathLike) -> bool:
    """A video file rather than a camera number or a stream URL."""
    if isinstance(source, int):
        return False
    text = os.fspath(source)
    return not (text.isdigit() or "://" in text)


class EmotionRecognizer:
    """Faces and their emotions in photos, frames, video files and cameras, with the shipped models by default.

    ``checkpoint``: a shipped model's name ("default", "fast", "accurate"), an emotion model's path (.pt or
    .onnx), or a list of .pt paths run as one ensemble (their calibrated probabilities averaged); None is
    "default". ``settings``: a ``realtime.settings.Settings`` to start from; the keyword options override its
    fields (README, "Pipeline options"): ``detector`` (a name such as "short" or "full", or a .tflite path; None:
    the one for the kind of source, as the commands choose it), ``min_confidence``, ``margin``, ``smoothing``
    (streams only), ``backend``, ``precision`` ("int8" or "fp32"), ``threads``, ``label_all``, ``align``. Photos,
    video files and cameras each get the settings the commands give them (``Settings.for_source``), each stream a
    detector and tracks of its own.

    The models load when it is made, so a missing or foreign model or detector, or an option out of its range
    (ValueError), fails here. Use it as a context manager or call ``close()``; an instance left open is cleaned
    up at exit without a message.

    Threads: one recognizer may be shared; its ``recognize`` calls run one at a time, and ``close()`` waits for
    the one running. For photos in parallel, give each thread a recognizer of its own. A stream belongs to the
    thread that iterates it.
    """

    def __init__(self, checkpoint: str | os.PathLike | Sequence[str | os.PathLike] | None = None, *,
                 settings: Settings | None = None, **options: Any) -> None:
        self.settings = (settings or Settings()).replace(checkpoint=checkpoint, **options)
        s = self.settings
        self.classifier = load_classifier(checkpoints(s), threads=s.threads, backend=s.backend, precision=s.precision)
        self._streams: weakref.WeakSet = weakref.WeakSet()  # generators of stream() not finished yet
        self._closed = False
        self._lock = threading.Lock()  # one photo at a time; close() waits for the one being read
        # made now so that a wrong detector or threshold fails here
        self._photos: Pipeline | None = self._pipeline("photo")
        self.margin = self._photos.margin

    @property
    def classes(self) -> list[str]:
        """The emotion names, in the model's order (the keys of every face's ``probabilities``)."""
        return list(self.classifier.classes)

    @property
    def detector(self) -> str:
        """The face detector photos are read with (video files and cameras: ``settings.for_source``)."""
        return self.settings.for_source("photo").detector

    def _pipeline(self, kind: SourceKind) -> Pipeline:
        return build_pipeline(self.settings, kind, self.classifier)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this EmotionRecognizer is closed; make a new one")

    def recognize(self, image: ImageInput, color: Color = "bgr") -> list[FaceResult]:
        """Every face in one photo: its ``box`` (x0, y0, x1, y1 in pixels), ``label``, ``confidence``,
        ``probabilities`` (every class), the detector's ``score`` and ``track`` (1, 2, ... within the photo).

        ``image``: a path, a uint8 numpy array or a PIL image; ``color`` ("bgr" or "rgb") is the channel order of
        a colour array (see ``to_bgr``). Faces are in the detector's order; an empty list when there is none.
        """
        frame = to_bgr(image, color)
        source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        with self._lock:
            self._check_open()
            return self._photos.process(frame, 0, None, source=source).faces

    def top_emotion(self, image: ImageInput, color: Color = "bgr") -> tuple[str | None, float | None]:
        """``(label, confidence)`` of the photo's subject (the largest face the detector is nearly as sure of as
        its best, realtime.labelled.subject: the rule fer-evaluate scores photos by); ``(None, None)`` when there
        is no face. The label is None too when the model cannot read the face, where the results say so.
        """
        faces = self.recognize(image, color)
        if not faces:
            return None, None
        face = subject(faces)
        return face.label, face.confidence

    def stream(self, source: int | str | os.PathLike, *, max_frames: int | None = None,
               with_frames: bool = False, stall_timeout: float = STALL_TIMEOUT) -> Iterator[Any]:
        """Results frame by frame (``FrameResult``: ``frame``, ``time`` in seconds, ``faces``) from a video file,
        a camera number or a stream URL; a face keeps its ``track`` id from frame to frame (until a scene cut) and its
        probabilities are the evidence its track gathered, weighted by how well each view could be read.

        A file yields every frame in order, timed by its frame rate, and raises VideoError at its end when it
        decoded fewer frames than it announces (truncated or damaged). A camera or URL is live: each step yields the
        newest frame (older ones are dropped when the loop is slower than the camera) and ``frame`` is the
        capture index. ``max_frames`` stops after that many frames; ``with_frames`` yields ``(result, frame)``
        pairs with the BGR frame, to draw on or save. Leaving the loop early (break) releases the source.

        A missing file raises VideoError at once; a camera that cannot be opened raises CaptureError at the first
        step, as does a live source that delivers nothing for ``stall_timeout`` seconds (0.01 to 86400, the limit
        for opening a stream URL too).
        """
        self._check_open()
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                       or max_frames < 0):
            raise ValueError(f"max_frames must be a whole number >= 0 or None, got {max_frames!r}")
        lo, hi = STALL_TIMEOUT_RANGE
        if not (isinstance(stall_timeout, (int, float)) and not isinstance(stall_timeout, bool)
                and lo <= stall_timeout <= hi):
            raise ValueError(f"stall_timeout must be a number of seconds in [{lo:g}, {hi:g}], got {stall_timeout!r}")
        if not isinstance(source, (int, str, os.PathLike)) or isinstance(source, bool):
            raise TypeError(f"expected a video path, a camera number or a URL, got {type(source).__name__}")
        if _is_file_source(source) and not Path(source).is_file():
            raise VideoError(not_a_file(source, "video"))
        generator = self._stream(source, max_frames, with_frames, stall_timeout)
        self._streams.add(generator)
        _LIVE_STREAMS.add(generator)
        return generator

    def _stream(self, source: int | str | os.PathLike, max_frames: int | None, with_frames: bool,
                stall_timeout: float) -> Iterator[Any]:
        self._check_open()  # made before close(), started after it
        is_file = _is_file_source(source)
        frames = self._file_frames(source) if is_file else self._live_frames(source, stall_timeout)
        pipe = self._pipeline("file" if is_file else "camera")
        try:
            for n, (index, time_s, frame) in enumerate(frames):
                if (max_frames is not None and n >= max_frames) or self._closed:  # closed from another thread
                    break
                result = pipe.process(frame, index, time_s)
                yield (result, frame) if with_frames else result
        finally:
            frames.close()
            pipe.close()

    @staticmethod
    def _file_frames(path: str | os.PathLike) -> Iterator[tuple[int, float, np.ndarray]]:
        """Every frame of a video file, timed by its frame rate; VideoError when decoding stops before the frame
        count the file announces (truncated or damaged), as fer-annotate says it."""
        with VideoReader(path) as reader:
            fps = reader.info.fps or DEFAULT_FPS
            for i, frame in enumerate(reader):
                yield i, i / fps, frame
            announced = reader.info.frame_count
            if announced and reader.frames_read < announced:
                raise VideoError(f"{printable(path)}: decoding stopped after {reader.frames_read} of the "
                                 f"{announced} frames it announces (truncated or damaged)")

    @staticmethod
    def _live_frames(source: int | str, stall_timeout: float) -> Iterator[tuple[int, float, np.ndarray]]:
        cap, _ = open_source(source if isinstance(source, int) else os.fspath(source), timeout=stall_timeout)
        capture = LatestFrameCapture(cap)
        try:
            while (item := capture.read(stall_timeout)) is not None:
                yield item
            if capture.error is not None:
                raise CaptureError(f"the source stopped delivering frames ({capture.error})")
        finally:
            capture.close()

    def close(self) -> None:
        """Release the face detectors and any stream still open. Idempotent. A stream not started yet raises
        RuntimeError when it is; one running in another thread ends at its next frame and releases itself."""
        with self._lock:
            self._closed = True
            if self._photos is not None:
                self._photos.close()
                self._photos = None
        for generator in list(self._streams):
            if inspect.getgeneratorstate(generator) == inspect.GEN_CREATED:
                continue  # holds nothing yet; its first step says the recognizer is closed
            try:
                generator.close()
            except ValueError:  # "generator already executing": in another thread, which ends it
                pass

    def __enter__(self) -> "EmotionRecognizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"EmotionRecognizer(detector={str(self.detector)!r}, classes={len(self.classes)}, "
                f"margin={self.margin:g}, {state})")

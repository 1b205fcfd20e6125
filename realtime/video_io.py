"""Video in and out: validated file reading, a capture thread that always hands over the newest frame,
and a writer that only puts a file in place once it is complete."""
from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from fercore.atomic import atomic_path

# OpenCV's own warnings (e.g. probing for a camera that is not there) would bury our clearer messages.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

# Containers OpenCV's bundled FFmpeg writes reliably, with their codec ('avc1' is not available there).
WRITER_FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}


class VideoError(RuntimeError):
    """A video file that cannot be read or written."""


class CaptureError(RuntimeError):
    """A camera or stream that cannot be opened or stops delivering frames."""


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float | None  # None when the container does not say
    frame_count: int | None  # as the container announces it


class VideoReader:
    """Frames of a video file, checked up front: a missing, empty or undecodable file raises VideoError."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"video not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise VideoError(f"{self.path} is empty (0 bytes)")
        self._cap = cv2.VideoCapture(str(self.path))
        ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok:
            self._cap.release()
            raise VideoError(f"{self.path}: cannot decode a frame (truncated, damaged, or not a video file)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.info = VideoInfo(first.shape[1], first.shape[0], fps if math.isfinite(fps) and fps > 0 else None,
                              count if count > 0 else None)
        self._first: np.ndarray | None = first
        self.frames_read = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            if self._first is not None:
                frame, self._first = self._first, None
            else:
                ok, frame = self._cap.read()
                if not ok:
                    return
            self.frames_read += 1
            yield frame

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(source: int | str) -> tuple[cv2.VideoCapture, bool]:
    """An opened capture for a camera number, a file or a URL, and whether it is a camera.

    A string of digits means a camera number, so ``--source 0`` works like ``--camera 0``.
    """
    if isinstance(source, str) and source.isdigit():
        source = int(source)
    if isinstance(source, int):
        level = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # probing logs an ERROR line
        try:
            cap = cv2.VideoCapture(source)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not cap.isOpened():
            raise CaptureError(f"cannot open camera {source}: there is no such camera or another program uses it "
                               "(choose one with --camera N, or read a file with --source FILE)")
        return cap, True
    if "://" not in source and not Path(source).is_file():
        raise CaptureError(f"video source not found: {source}")
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise CaptureError(f"cannot open video source {source} (not a video or stream OpenCV can decode)")
    return cap, False


class LatestFrameCapture:
    """Reads a capture in its own thread and keeps only the newest frame.

    When processing is slower than the camera, old frames are dropped instead of queueing up, so what is shown
    is never more than one frame behind. ``pace_fps`` plays a file at its own frame rate, like a camera would.
    """

    def __init__(self, cap: cv2.VideoCapture, pace_fps: float | None = None) -> None:
        self._cap = cap
        self._pace = pace_fps
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._time = 0.0
        self._seq = 0  # frames captured
        self._taken = 0  # seq of the last frame handed out
        self._ended = False
        self._stop = False
        self.error: Exception | None = None
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop:
                ok, frame = self._cap.read()
                if not ok:
                    break
                with self._cond:
                    self._frame, self._time = frame, time.monotonic() - self._start
                    self._seq += 1
                    self._cond.notify_all()
                if self._pace:
                    time.sleep(max(0.0, self._start + self._seq / self._pace - time.monotonic()))
        except Exception as exc:  # a broken backend ends the stream; read() reports it
            self.error = exc
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def read(self, timeout: float) -> tuple[int, float, np.ndarray] | None:
        """(capture index, seconds since start, frame) of the newest frame not handed out yet; None at the end.

        Raises CaptureError when no frame arrives for ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > self._taken or self._ended, timeout):
                raise CaptureError(f"no frame for {timeout:g} s: the camera or stream stopped delivering")
            if self._seq == self._taken:
                return None
            self._taken = self._seq
            return self._seq - 1, self._time, self._frame

    def close(self) -> None:
        """Stop the thread; a capture stuck inside a driver call is left to the daemon thread, never waited on."""
        self._stop = True
        self._thread.join(timeout=2.0)
        if not self._thread.is_alive():
            self._cap.release()


class CheckedWriter:
    """cv2.VideoWriter that refuses frames of the wrong size (OpenCV would drop them silently)."""

    def __init__(self, writer: cv2.VideoWriter, size: tuple[int, int]) -> None:
        self._writer = writer
        self.size = size
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size or frame.dtype != np.uint8 or frame.ndim != 3:
            raise VideoError(f"frame {frame.shape} {frame.dtype} does not fit a {self.size[0]}x{self.size[1]} "
                             "BGR video")
        self._writer.write(frame)
        self.frames += 1


@contextmanager
def video_writer(path: str | Path, fps: float, size: tuple[int, int]) -> Iterator[CheckedWriter]:
    """Write a video to a temporary file beside ``path``; it is renamed to ``path`` only when the block
    completes, and deleted if it fails, so a half-written video never sits under the final name."""
    path = Path(path)
    fourcc = WRITER_FOURCC.get(path.suffix.lower())
    if fourcc is None:
        raise VideoError(f"{path}: cannot write this video type; use one of {', '.join(WRITER_FOURCC)}")
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not writer.isOpened():
            raise VideoError(f"cannot write video {path} ({fourcc}, {size[0]}x{size[1]} at {fps:g} fps)")
        try:
            yield CheckedWriter(writer, size)
        finally:
            writer.release()

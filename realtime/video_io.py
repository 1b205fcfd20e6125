"""Video in and out: validated file reading, a capture thread that always hands over the newest frame,
and a writer that only puts a file in place once it is complete and read back.

OpenCV crashes the process on a path that is not valid UTF-8, so such paths are refused with a message (photos,
read and written through Python, take any path). Network streams open in a thread with a time limit, so a
server that never answers ends with a message, and Ctrl-C works meanwhile.
"""
from __future__ import annotations

import math
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from fercore.atomic import atomic_path, free_space, not_a_file, printable
from realtime.photos import too_large

# OpenCV's own warnings (e.g. probing for a camera that is not there) would bury our clearer messages; so would
# FFmpeg's ("moov atom not found" when a damaged file is read back). Set before the first capture, which reads it.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

# Containers OpenCV's bundled FFmpeg writes reliably, with their codec ('avc1' is not available there).
WRITER_FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}
DEFAULT_FPS = 25.0  # the frame rate assumed for the rare video file whose container does not state one
# Seconds a live source may stay silent (or a stream URL take to open) before it is given up: default and range,
# for fer-webcam --stall-timeout and EmotionRecognizer.stream alike.
STALL_TIMEOUT = 5.0
STALL_TIMEOUT_RANGE = (0.01, 86400.0)


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
            raise VideoError(not_a_file(self.path, "video"))
        if self.path.stat().st_size == 0:
            raise VideoError(f"{printable(self.path)} is empty (0 bytes)")
        self._cap = cv2.VideoCapture(opencv_path(self.path, VideoError))
        ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok:
            self._cap.release()
            raise VideoError(f"{self.path}: cannot decode a frame (truncated, damaged, or not a video file)")
        if problem := too_large(first.shape[1], first.shape[0], f"{self.path}: a frame"):
            self._cap.release()
            raise VideoError(problem)
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


def opencv_path(path: str | Path, error: type[Exception] = VideoError) -> str:
    """``path`` as the string OpenCV takes; ``error`` when it is not valid UTF-8 (OpenCV would crash on it)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{printable(path)}: the name is not valid UTF-8, which OpenCV cannot open (it would crash); "
                    "rename the file or its folder") from None
    return text


def open_source(source: int | str, timeout: float | None = None) -> tuple[cv2.VideoCapture, bool]:
    """An opened capture for a camera number, a file or a URL, and whether it is a camera.

    A string of digits means a camera number, so ``--source 0`` works like ``--camera 0``. A URL (``://``)
    that gives no answer within ``timeout`` seconds (None: FFmpeg's own, about 30 s) raises CaptureError;
    the same limit applies to each read from it afterwards.
    """
    if isinstance(source, str) and source.isdigit():
        source = int(source)
    if isinstance(source, int):
        if source < 0:
            raise CaptureError(f"no camera {source}: camera numbers start at 0")
        level = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # probing logs an ERROR line
        try:
            cap = cv2.VideoCapture(source)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not cap.isOpened():
            raise CaptureError(f"cannot open camera {source}: there is no such camera or another program uses it "
                               "(choose one with --camera N, or read a file with --source FILE)")
        return cap, True
    if "://" in source:
        return _open_stream(opencv_path(source, CaptureError), timeout), False
    if not Path(source).is_file():
        raise CaptureError(not_a_file(source, "video"))
    cap = cv2.VideoCapture(opencv_path(source, CaptureError))
    if not cap.isOpened():
        raise CaptureError(f"cannot open video source {source} (not a video or stream OpenCV can decode)")
    return cap, False


def _open_stream(url: str, timeout: float | None) -> cv2.VideoCapture:
    """Open a network stream with FFmpeg, limited to ``timeout`` seconds for the opening and for each read.

    The opening runs in a thread the caller waits on, so Ctrl-C and SIGTERM are handled at once, and a
    backend that ignores its time limit is abandoned (its thread releases the capture if it ever returns).
    """
    params = []
    if timeout is not None:
        ms = max(1, round(timeout * 1000))
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    result: dict = {}
    done, lock = threading.Event(), threading.Lock()

    def target() -> None:
        level = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # FFmpeg's timeout warnings
        try:
            cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        except Exception:  # a backend error: reported below as "cannot open"
            cap = None
        finally:
            cv2.utils.logging.setLogLevel(level)
        with lock:
            if result.get("abandoned"):
                if cap is not None:
                    cap.release()
                return
            result["cap"] = cap
            done.set()

    start = time.monotonic()
    threading.Thread(target=target, name="open-stream", daemon=True).start()
    try:
        answered = done.wait(None if timeout is None else timeout + 2.0)
    finally:
        with lock:
            if not done.is_set():
                result["abandoned"] = True
    cap = result.get("cap")
    if answered and cap is not None and cap.isOpened():
        return cap
    if cap is not None:
        cap.release()
    if timeout is not None and (not answered or time.monotonic() - start >= 0.9 * timeout):
        raise CaptureError(f"no answer from the stream {url} within {timeout:g} s")
    raise CaptureError(f"cannot open video source {url} (not a video or stream OpenCV can decode)")


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
    """cv2.VideoWriter that refuses frames of the wrong size (OpenCV would drop them silently) and pads frames of
    an odd width or height with a black column or row (OpenCV's encoders would drop it instead)."""

    def __init__(self, writer: cv2.VideoWriter, size: tuple[int, int], encoded: tuple[int, int]) -> None:
        self._writer = writer
        self.size = size  # the frames' size
        self.encoded_size = encoded  # the video's size: even
        self.frames = 0

    @property
    def padding(self) -> str | None:
        """How the frames were padded, for messages; None when they were not."""
        if self.encoded_size == self.size:
            return None
        return (f"padded from {self.size[0]}x{self.size[1]} to {self.encoded_size[0]}x{self.encoded_size[1]} "
                "with black on the right and bottom (the video encoders need even sizes)")

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size or frame.dtype != np.uint8 or frame.ndim != 3:
            raise VideoError(f"frame {frame.shape} {frame.dtype} does not fit a {self.size[0]}x{self.size[1]} "
                             "BGR video")
        if self.encoded_size != self.size:
            frame = cv2.copyMakeBorder(frame, 0, self.encoded_size[1] - self.size[1], 0,
                                       self.encoded_size[0] - self.size[0], cv2.BORDER_CONSTANT, value=(0, 0, 0))
        self._writer.write(frame)
        self.frames += 1


def count_frames(path: str | Path) -> tuple[int, tuple[int, int] | None]:
    """(frames that decode, (width, height) of the first) of a video file: every frame is read back."""
    cap = cv2.VideoCapture(opencv_path(path))
    try:
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            return 0, None
        n = 1
        while cap.grab():
            n += 1
        return n, (first.shape[1], first.shape[0])
    finally:
        cap.release()


@contextmanager
def video_writer(path: str | Path, fps: float, size: tuple[int, int]) -> Iterator[CheckedWriter]:
    """Write a video to a temporary file beside ``path``; when the block completes, the file is read back
    (every frame must decode, at the right size: OpenCV reports no write error, so a full disk would otherwise
    give a file with no index that looks finished), synced and renamed to ``path``. If the block or the check
    fails, it is deleted, so a half-written video never sits under the final name."""
    path = Path(path)
    fourcc = WRITER_FOURCC.get(path.suffix.lower())
    if fourcc is None:
        raise VideoError(f"{path}: cannot write this video type; use one of {', '.join(WRITER_FOURCC)}")
    opencv_path(path)
    encoded = (size[0] + size[0] % 2, size[1] + size[1] % 2)
    with atomic_path(path, devices=False) as tmp:  # read back below: a pipe would wait for ever
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, encoded)
        if not writer.isOpened():
            raise VideoError(f"cannot write video {path} ({fourcc}, {size[0]}x{size[1]} at {fps:g} fps)")
        checked = CheckedWriter(writer, size, encoded)
        try:
            yield checked
        finally:
            writer.release()
        if checked.frames == 0:
            raise VideoError(f"{path}: no frames to write; nothing written")
        decoded, shape = count_frames(tmp)
        if decoded != checked.frames:
            free = free_space(path.parent)
            raise VideoError(f"writing {path} failed: {decoded} of its {checked.frames} frames can be read back "
                             f"(is the disk full? {free or 'unknown'} free there); nothing written")
        if shape != encoded:
            raise VideoError(f"writing {path} failed: it reads back at {shape[0]}x{shape[1]}, not "
                             f"{encoded[0]}x{encoded[1]}; nothing written")

"""Live emotion recognition from a camera, a video file or a stream, in a window or headless.

    fer-webcam                      # camera 0
    fer-webcam --camera 1 --record out.mp4 --log results.jsonl
    fer-webcam --source clip.mp4    # any OpenCV source: file, rtsp:// or http:// URL
    fer-webcam --no-display --log results.jsonl

Keys in the window: q or Esc quits, space pauses, s saves a screenshot. Ctrl-C, SIGTERM and SIGHUP stop the
stream like q (also headless): the recording and the log are finished and kept.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from fercore.atomic import OutputError, check_writable, destination, not_a_file, output_error, printable
from fercore.cli import count_of, number, parser, raise_all
from realtime.commands import options
from realtime.errors import InputError
from realtime.overlay import draw_faces, draw_fps
from realtime.photos import ImageError, too_large, write_image
from realtime.pipeline import Pipeline
from realtime.results import FrameResult, JsonlLog, header
from realtime.settings import SourceKind, build_pipeline, record
from realtime.video_io import (STALL_TIMEOUT, STALL_TIMEOUT_RANGE, WRITER_FOURCC, CaptureError, LatestFrameCapture,
                               VideoError, opencv_path, open_source, video_writer)

WINDOW = "Emotions - q: quit, space: pause, s: screenshot"
FALLBACK_FPS = 30.0  # recording rate when a camera does not report a sane one


def display_problem() -> str | None:
    """Why no window can open here, or None.

    Checked before any window call because OpenCV's Qt backend aborts the whole process, uncatchably, when it
    cannot reach an X display. The probe connects with libxcb, the library Qt itself uses.
    """
    if not sys.platform.startswith("linux"):
        return None
    if not os.environ.get("DISPLAY"):
        extra = " (OpenCV's windows need X11 or XWayland)" if os.environ.get("WAYLAND_DISPLAY") else ""
        return f"no display: DISPLAY is not set{extra}"
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return "no display: the X client library libxcb.so.1 is not installed"
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(None, None)
    try:
        failed = xcb.xcb_connection_has_error(conn)
    finally:
        xcb.xcb_disconnect(conn)
    return f"no display: cannot connect to the X display {os.environ['DISPLAY']}" if failed else None


def get_parser() -> argparse.ArgumentParser:
    p = parser("realtime.commands.webcam", __doc__)
    src = p.add_mutually_exclusive_group()
    # default None, not 0: argparse tells --camera 0 --source X apart from --source X only by the default
    src.add_argument("--camera", type=number(0, kind=int), default=None, help="camera number, from 0 (default 0)")
    src.add_argument("--source", help="a video file or URL instead of a camera (a file plays at its frame rate)")
    p.add_argument("--record", type=Path, help="save the annotated stream as a video (.mp4 or .avi)")
    p.add_argument("--log", type=Path,
                   help="write each frame's results to a JSON Lines file as they come (an existing file is replaced)")
    p.add_argument("--no-display", action="store_true", help="run without a window (servers, containers)")
    p.add_argument("--screenshot-dir", type=Path, default=Path("screenshots"),
                   help="where the s key saves screenshots (default ./screenshots)")
    p.add_argument("--screenshot-after", type=number(1, kind=int), metavar="N",
                   help="also save a screenshot after N frames")
    p.add_argument("--max-frames", type=number(1, kind=int), metavar="N", help="stop after N processed frames")
    lo, hi = STALL_TIMEOUT_RANGE
    p.add_argument("--stall-timeout", type=number(lo, hi), default=STALL_TIMEOUT, metavar="S",
                   help="seconds without an answer or a new frame before giving up on the source, also when "
                        f"opening a stream (default {STALL_TIMEOUT:g}; {lo:g} to {hi:g})")
    options.add_pipeline_args(p)
    return p


def source(args: argparse.Namespace) -> int | str:
    """What to read: --source, or the camera number (0 when neither is given)."""
    if args.source is not None:
        return args.source
    return 0 if args.camera is None else args.camera


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (links included)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b) or a.resolve() == b.resolve()
    except OSError:
        return False


def check_outputs(args: argparse.Namespace) -> None:
    """Before anything starts: a file --source exists and OpenCV can take its name; --record and --log are
    neither the source nor each other, and can be written; so can the screenshot folder for --screenshot-after
    (with a window, a warning says when the s key could not save one)."""
    source = None
    if args.source is not None and "://" not in args.source and not args.source.isdigit():
        source = Path(opencv_path(args.source, CaptureError))
        if not source.is_file():
            raise CaptureError(not_a_file(args.source, "video"))
    outputs = {name: path for name, path in (("--record", args.record), ("--log", args.log)) if path is not None}
    for name, out in outputs.items():
        if source is not None and same_file(out, source):
            raise InputError(f"refusing to write {printable(out)} ({name}): it is the --source video")
    if args.record is not None and args.log is not None and same_file(args.record, args.log):
        raise InputError(f"--record and --log name the same file {printable(args.log)}")
    if args.record is not None:
        if args.record.suffix.lower() not in WRITER_FOURCC:
            raise InputError(f"--record: use a {' or '.join(WRITER_FOURCC)} file, got {printable(args.record)}")
        opencv_path(args.record)
    for out in outputs.values():
        check_writable(out)
    if args.screenshot_after:
        check_writable(args.screenshot_dir, folder=True)
    elif not args.no_display:  # the s key may never be pressed: a warning, not a refusal to start
        try:
            check_writable(args.screenshot_dir, folder=True)
        except OutputError as exc:
            print(f"warning: the s key cannot save screenshots: {exc}", file=sys.stderr)


def save_screenshot(image: np.ndarray, folder: Path, index: int) -> Path | None:
    """Save a screenshot; a failure (a full disk) is told and the stream goes on."""
    path = folder / f"screenshot-{time.strftime('%Y%m%d-%H%M%S')}-{index:06d}.png"
    try:
        write_image(path, image)
    except (OutputError, ImageError) as exc:
        print(f"warning: no screenshot: {exc}", file=sys.stderr)
        return None
    print(f"screenshot saved: {printable(path)}")
    return path


class _Stop(Exception):
    """A stop signal arrived while waiting for a frame."""


class StopSignals:
    """Ctrl-C, SIGTERM and SIGHUP end the stream like its end: the loop stops, and the recording and the log are
    finished and kept (a stopped stream is a finished stream).

    A signal is noted and the loop stops before its next frame, never in the middle of writing one (the recording
    and the log hold the same frames); one that comes while waiting for the source (opening it, or the next frame,
    up to --stall-timeout) ends the wait at once. A signal ignored before (``nohup``) stays ignored. Only in the
    main thread, where Python handles signals.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._waiting = False
        self._previous: dict = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
        if self._waiting:
            self._waiting = False
            raise _Stop()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """A wait for the source that a stop signal ends with _Stop."""
        if self.signum is not None:
            raise _Stop()
        self._waiting = True
        try:
            yield
        finally:
            self._waiting = False

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                if signal.getsignal(s) != signal.SIG_IGN:
                    self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)


def annotated_stream(capture: LatestFrameCapture, pipe: Pipeline, is_camera: bool,
                     timeout: float) -> Iterator[tuple[int, FrameResult, np.ndarray]]:
    """The newest frame each time one is asked for, processed, with results and FPS drawn on it.

    The FPS spans one request to the next, so it includes what the caller does with a frame (show, record).
    Raises CaptureError when the source stalls, or a camera ends (a file simply ends).
    """
    fps, last = 0.0, None
    while (item := capture.read(timeout)) is not None:
        index, t, frame = item
        if problem := too_large(frame.shape[1], frame.shape[0], "a frame of the source"):
            raise CaptureError(problem)
        result = pipe.process(frame, index, t)
        now = time.perf_counter()
        if last is not None:
            rate = 1.0 / max(now - last, 1e-6)
            fps = rate if fps == 0.0 else 0.9 * fps + 0.1 * rate
        last = now
        draw_faces(frame, result.faces, pipe.classes)
        draw_fps(frame, fps)
        yield index, result, frame
    if is_camera or capture.error is not None:
        raise CaptureError(f"the source stopped delivering frames ({capture.error or 'the camera closed it'})")


def show(image: np.ndarray, paused: bool) -> int:
    """Show a frame (marked when paused); the key pressed, -1 for none, or q if the user closed the window."""
    if paused:
        image = image.copy()
        cv2.putText(image, "PAUSED", (10, image.shape[0] - 15), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 255), 2,
                    cv2.LINE_AA)
    cv2.imshow(WINDOW, image)
    key = cv2.waitKey(30 if paused else 1)
    if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
        return ord("q")
    return key & 0xFF if key >= 0 else -1


def source_kind(args: argparse.Namespace) -> SourceKind:
    """A video file gets the settings of files; a camera number or a stream URL those of cameras."""
    source = args.source
    return "file" if source is not None and "://" not in source and not source.isdigit() else "camera"


def open_capture(args: argparse.Namespace, stop: StopSignals) -> tuple[LatestFrameCapture, bool, float] | None:
    """The source, reading in the background (a file at its own frame rate), whether it is a camera, and its frame
    rate; None when a stop signal came while it was opening."""
    what = source(args)
    try:
        with stop.waiting():
            cap, is_camera = open_source(what, timeout=args.stall_timeout)
    except _Stop:
        return None
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if 1 <= fps <= 240 else FALLBACK_FPS
    is_file = not is_camera and "://" not in str(what)
    return LatestFrameCapture(cap, pace_fps=fps if is_file else None), is_camera, fps


class Loop:
    """The frame loop: show, record and log each frame until the source ends, q, a stop signal or --max-frames.
    A failure of the source or of the log ends the loop and joins ``failures``; what was recorded and logged is
    kept."""

    def __init__(self, args: argparse.Namespace, stop: StopSignals, log: JsonlLog | None, fps: float,
                 failures: list[Exception]) -> None:
        self.args, self.stop, self.log, self.fps, self.failures = args, stop, log, fps, failures
        self.writer = None
        self.processed = 0

    def run(self, stream: Iterator[tuple[int, FrameResult, np.ndarray]], recording: ExitStack) -> None:
        args = self.args
        frame, index, paused = None, 0, False
        while (args.max_frames is None or self.processed < args.max_frames) and self.stop.signum is None:
            if not paused:
                item = self.next_frame(stream)
                if item is None:
                    break
                index, result, frame = item
                if not self.keep(index, result, frame, recording):
                    break
            if not args.no_display:
                key = show(frame, paused)
                if key in (ord("q"), 27):
                    break
                if key == ord(" "):
                    paused = not paused
                elif key == ord("s"):
                    save_screenshot(frame, args.screenshot_dir, index)

    def next_frame(self, stream: Iterator) -> tuple[int, FrameResult, np.ndarray] | None:
        """The next annotated frame; None at the end of a file, a stop signal or a failed source."""
        try:
            with self.stop.waiting():
                return next(stream, None)
        except _Stop:
            return None
        except CaptureError as exc:
            self.failures.append(exc)
            return None

    def keep(self, index: int, result: FrameResult, frame: np.ndarray, recording: ExitStack) -> bool:
        """Record, log and screenshot one frame; False when the log could not be written (a full disk)."""
        args = self.args
        self.processed += 1
        if args.record and self.writer is None:
            self.writer = recording.enter_context(video_writer(args.record, self.fps, (frame.shape[1], frame.shape[0])))
        if self.writer is not None:
            self.writer.write(frame)
        if self.log is not None:
            try:
                self.log.write(result)
            except OSError as exc:
                self.failures.append(output_error(args.log, exc))
                return False
        if args.screenshot_after == self.processed:
            save_screenshot(frame, args.screenshot_dir, index)
        return True


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    problem = None if args.no_display else display_problem()
    if problem:
        raise InputError(f"{problem}; use --no-display to run without a window")
    check_outputs(args)
    settings, kind = options.settings_from_args(args), source_kind(args)
    failures: list[Exception] = []  # raised once the recording and the log are finished, so they are kept
    recorded = False
    with StopSignals() as stop, ExitStack() as stack:  # a signal while finishing the outputs cannot cut them short
        pipe = stack.enter_context(build_pipeline(settings, kind))
        opened = open_capture(args, stop)
        if opened is None:
            print(f"stopped by {stop.name} before the source opened", file=sys.stderr)
            return 0
        capture, is_camera, source_fps = opened
        stack.callback(capture.close)
        log = None
        if args.log:
            try:
                log = JsonlLog(args.log, header(pipe.classes, input=printable(source(args)), kind="stream",
                                                settings=record(settings, kind, pipe)))
            except OSError as exc:
                raise output_error(args.log, exc) from exc
            stack.callback(finish_log, log, args.log, failures)
        if not args.no_display:
            cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
            stack.callback(cv2.destroyAllWindows)
        loop = Loop(args, stop, log, source_fps, failures)
        with ExitStack() as recording:  # an error before the end (a bug, a frame that does not fit) deletes it
            loop.run(annotated_stream(capture, pipe, is_camera, args.stall_timeout), recording)
            recorded = finish_recording(loop, stop, recording)
    stopped = f" (stopped by {stop.name})" if stop.signum is not None else ""
    print(f"{count_of(loop.processed, 'frames')} processed{stopped}")
    if recorded:
        padding = f"; {loop.writer.padding}" if loop.writer.padding else ""
        print(f"recorded {printable(args.record)} ({count_of(loop.writer.frames, 'frames')} at {source_fps:g} "
              f"fps{padding})")
    raise_all(failures)
    return 0


def finish_recording(loop: Loop, stop: StopSignals, recording: ExitStack) -> bool:
    """Read back, sync and rename the recording into place; False (and a failure noted) when that fails."""
    if loop.writer is None:
        return False
    if stop.signum is not None:
        print(f"stopped by {stop.name}: finishing {printable(loop.args.record)} "
              f"({count_of(loop.writer.frames, 'frames')})", file=sys.stderr)
    try:
        recording.close()
        return True
    except (OutputError, VideoError) as exc:
        loop.failures.append(exc)
        return False


def finish_log(log: JsonlLog, path: Path, failures: list[Exception]) -> None:
    """Close the log (close_log); a failure joins ``failures``, unless one for the log is there already."""
    try:
        close_log(log, path)
    except OutputError as exc:
        if not any(isinstance(f, OutputError) and printable(path) in str(f) for f in failures):
            failures.append(exc)


def close_log(log: JsonlLog, path: Path) -> None:
    """Close the log, cut a last line a full disk left half-written, and sync it to the disk; a failure is an
    OutputError (the lines before it are kept). A device or a pipe (written straight, fercore.atomic) is only
    closed: there is nothing to cut or sync there."""
    error: OSError | None = None
    try:
        log.close()
    except OSError as exc:
        error = exc
    try:
        if not destination(path)[1]:  # a regular file
            with open(path, "r+b") as fh:
                size = fh.seek(0, os.SEEK_END)
                tail = size - max(0, size - (1 << 20))
                fh.seek(size - tail)
                data = fh.read(tail)
                if not data.endswith(b"\n"):
                    fh.truncate(size - tail + data.rfind(b"\n") + 1)
                os.fsync(fh.fileno())
    except OSError as exc:
        error = error or exc
    if error is not None:
        raise output_error(path, error) from error


def main(argv: list[str] | None = None) -> int:
    return options.run(command, argv)


if __name__ == "__main__":
    sys.exit(main())

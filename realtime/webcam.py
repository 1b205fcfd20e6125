"""Live emotion recognition from a camera, a video file or a stream, in a window or headless.

    python -m realtime.webcam                      # camera 0
    python -m realtime.webcam --camera 1 --record out.mp4 --log results.jsonl
    python -m realtime.webcam --source clip.mp4    # any OpenCV source: file, rtsp:// or http:// URL
    python -m realtime.webcam --no-display --log results.jsonl

Keys in the window: q or Esc quits, space pauses, s saves a screenshot.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from fercore.atomic import atomic_path
from realtime import cli
from realtime.overlay import draw_faces, draw_fps
from realtime.pipeline import Pipeline
from realtime.results import FrameResult, JsonlLog, header
from realtime.video_io import WRITER_FOURCC, CaptureError, LatestFrameCapture, open_source, video_writer

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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m realtime.webcam", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=0, help="camera number (default 0)")
    src.add_argument("--source", help="a video file or URL instead of a camera (a file plays at its frame rate)")
    p.add_argument("--record", type=Path, help="save the annotated stream as a video (.mp4 or .avi)")
    p.add_argument("--log", type=Path, help="append each frame's results to a JSON Lines file")
    p.add_argument("--no-display", action="store_true", help="run without a window (servers, containers)")
    p.add_argument("--screenshot-dir", type=Path, default=Path("screenshots"),
                   help="where the s key saves screenshots (default ./screenshots)")
    p.add_argument("--screenshot-after", type=int, metavar="N", help="also save a screenshot after N frames")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    p.add_argument("--stall-timeout", type=float, default=5.0,
                   help="seconds without a new frame before giving up on the source (default 5)")
    cli.add_pipeline_args(p)
    return p.parse_args(argv)


def save_screenshot(image: np.ndarray, folder: Path, index: int) -> Path:
    path = folder / f"screenshot-{time.strftime('%Y%m%d-%H%M%S')}-{index:06d}.png"
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), image)
    print(f"screenshot saved: {path}")
    return path


def annotated_stream(capture: LatestFrameCapture, pipe: Pipeline, is_camera: bool,
                     timeout: float) -> Iterator[tuple[int, FrameResult, np.ndarray]]:
    """The newest frame each time one is asked for, processed, with results and FPS drawn on it.

    The FPS spans one request to the next, so it includes what the caller does with a frame (show, record).
    Raises CaptureError when the source stalls, or a camera ends (a file simply ends).
    """
    fps, last = 0.0, None
    while (item := capture.read(timeout)) is not None:
        index, t, frame = item
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = None if args.no_display else display_problem()
    if problem:
        raise cli.InputError(f"{problem}; use --no-display to run without a window")
    if args.record and args.record.suffix.lower() not in WRITER_FOURCC:
        raise cli.InputError(f"--record: use a {' or '.join(WRITER_FOURCC)} file, got {args.record}")
    source = args.source if args.source is not None else args.camera
    stopped: CaptureError | None = None  # raised once the recording and the log are closed, so they are kept
    with ExitStack() as stack:
        pipe = stack.enter_context(cli.pipeline_from_args(args, video=True))
        cap, is_camera = open_source(source)
        source_fps = cap.get(cv2.CAP_PROP_FPS)
        source_fps = source_fps if 1 <= source_fps <= 240 else FALLBACK_FPS
        is_file = not is_camera and "://" not in str(source)
        capture = LatestFrameCapture(cap, pace_fps=source_fps if is_file else None)  # starts reading now
        stack.callback(capture.close)
        log = None
        if args.log:
            log = JsonlLog(args.log, header(pipe.classes, input=str(source), kind="stream",
                                            settings=cli.settings(args, pipe)))
            stack.callback(log.close)
        if not args.no_display:
            cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
            stack.callback(cv2.destroyAllWindows)
        stream = annotated_stream(capture, pipe, is_camera, args.stall_timeout)
        writer, frame, index, processed, paused = None, None, 0, 0, False
        while args.max_frames is None or processed < args.max_frames:
            if not paused:
                try:
                    item = next(stream, None)
                except CaptureError as exc:
                    stopped = exc
                    break
                if item is None:
                    break  # the end of a file
                index, result, frame = item
                processed += 1
                if args.record and writer is None:
                    writer = stack.enter_context(video_writer(args.record, source_fps,
                                                              (frame.shape[1], frame.shape[0])))
                if writer is not None:
                    writer.write(frame)
                if log is not None:
                    log.write(result)
                if args.screenshot_after == processed:
                    save_screenshot(frame, args.screenshot_dir, index)
            if not args.no_display:
                key = show(frame, paused)
                if key in (ord("q"), 27):
                    break
                if key == ord(" "):
                    paused = not paused
                elif key == ord("s"):
                    save_screenshot(frame, args.screenshot_dir, index)
    print(f"{processed} frames processed")
    if writer is not None:
        print(f"recorded {args.record} ({writer.frames} frames at {source_fps:g} fps)")
    if stopped is not None:
        raise stopped
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime import cli, webcam
from realtime.overlay import EMOTION_COLORS
from realtime.video_io import VideoReader

ROOT = Path(__file__).resolve().parents[1]


def run_app(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime.webcam", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def without_display() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def test_headless_run_on_a_video_source_with_log_and_recording(tiny_checkpoint, media, tmp_path):
    proc = run_app("--source", media / "group_pan.mp4", "--no-display", "--max-frames", 15,
                   "--log", tmp_path / "log.jsonl", "--record", tmp_path / "rec.mp4", "--checkpoint", tiny_checkpoint,
                   env=without_display())
    assert proc.returncode == 0, proc.stderr
    assert "15 frames processed" in proc.stdout
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines[0]["kind"] == "stream" and len(lines) == 16
    assert all(len(line["faces"]) >= 4 for line in lines[1:])  # the pan starts on six faces
    with VideoReader(tmp_path / "rec.mp4") as r:
        assert (r.info.width, r.info.height, r.info.fps, r.info.frame_count) == (640, 480, 25, 15)


def test_no_display_is_a_message_not_a_crash(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert cli.run(webcam.main, []) == 1
    err = capsys.readouterr().err
    assert "no display: DISPLAY is not set" in err and "use --no-display" in err
    monkeypatch.setenv("DISPLAY", ":9876")  # set, but nothing listens there (OpenCV's Qt would abort the process)
    assert cli.run(webcam.main, []) == 1
    assert "cannot connect to the X display :9876" in capsys.readouterr().err


def test_no_camera_is_a_message_not_a_crash(tiny_checkpoint, capsys):
    assert cli.run(webcam.main, ["--camera", "99", "--no-display", "--checkpoint", str(tiny_checkpoint)]) == 1
    assert "cannot open camera 99" in capsys.readouterr().err


class PhotoCamera:
    """A camera showing a photo for a few frames, then failing: returning nothing, or hanging in the driver."""

    def __init__(self, photo: np.ndarray, frames: int, then: str) -> None:
        self.photo, self.left, self.then = photo, frames, then
        self.unblock = threading.Event()

    def read(self):
        if self.left == 0:
            if self.then == "hang":
                self.unblock.wait()
            return False, None
        self.left -= 1
        return True, self.photo.copy()

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        pass


@pytest.mark.parametrize("then", ["hang", "end"])
def test_a_camera_that_stops_delivering_ends_with_a_message(tiny_checkpoint, media, tmp_path, monkeypatch, capsys,
                                                            then):
    camera = PhotoCamera(cv2.imread(str(media / "photos" / "surprised.jpg")), frames=5, then=then)
    monkeypatch.setattr(webcam, "open_source", lambda source: (camera, True))
    args = ["--no-display", "--stall-timeout", "0.5", "--record", str(tmp_path / "rec.mp4"),
            "--checkpoint", str(tiny_checkpoint)]
    assert cli.run(webcam.main, args) == 1
    err = capsys.readouterr().err
    assert "stopped delivering" in err and "Traceback" not in err
    with VideoReader(tmp_path / "rec.mp4") as r:  # what was recorded before the failure is kept
        assert r.info.frame_count >= 1
    camera.unblock.set()


@pytest.mark.skipif(shutil.which("xvfb-run") is None or shutil.which("xauth") is None,
                    reason="xvfb-run or xauth not installed (apt-get install xvfb xauth)")
def test_the_window_shows_the_overlay_on_a_virtual_display(tiny_checkpoint, media, tmp_path):
    shots = tmp_path / "shots"
    video = media / "group_pan.mp4"
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1024x768x24", sys.executable, "-m", "realtime.webcam",
                           "--source", str(video), "--max-frames", "12", "--screenshot-after", "10",
                           "--screenshot-dir", str(shots), "--checkpoint", str(tiny_checkpoint)],
                          cwd=ROOT, env=without_display(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    (shot,) = shots.glob("screenshot-*.png")
    image = cv2.imread(str(shot))
    index = int(shot.stem.rsplit("-", 1)[1])  # the capture index of the frame shown
    with VideoReader(video) as r:
        raw = next(f for i, f in enumerate(r) if i == index)
    assert image.shape == raw.shape
    changed = np.abs(image.astype(int) - raw).sum(axis=2) > 60
    assert 0.01 < changed.mean() < 0.5  # boxes, labels and bars, not a different picture
    drawn = sum(int(np.all(image == np.array(c, np.uint8), axis=2).sum()) for c in EMOTION_COLORS.values())
    assert drawn > 500  # box and bar pixels in the emotion colours
    assert np.all(image[:12, :60] == 0, axis=2).mean() > 0.5  # the FPS counter's black box in the corner

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.commands import webcam
from realtime.overlay import EMOTION_COLORS
from realtime.video_io import VideoReader

ROOT = Path(__file__).resolve().parents[2]


def run_app(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime.commands.webcam", *map(str, args)], cwd=ROOT, env=env,
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
    assert webcam.main([]) == 1
    err = capsys.readouterr().err
    assert "no display: DISPLAY is not set" in err and "use --no-display" in err
    monkeypatch.setenv("DISPLAY", ":9876")  # set, but nothing listens there (OpenCV's Qt would abort the process)
    assert webcam.main([]) == 1
    assert "cannot connect to the X display :9876" in capsys.readouterr().err


def test_no_camera_is_a_message_not_a_crash(tiny_checkpoint, capsys):
    assert webcam.main(["--camera", "99", "--no-display", "--checkpoint", str(tiny_checkpoint)]) == 1
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


@pytest.mark.parametrize("then", [pytest.param("hang", marks=pytest.mark.slow), "end"])
def test_a_camera_that_stops_delivering_ends_with_a_message(tiny_checkpoint, media, tmp_path, monkeypatch, capsys,
                                                            then):
    camera = PhotoCamera(cv2.imread(str(media / "photos" / "surprised.jpg")), frames=5, then=then)
    monkeypatch.setattr(webcam, "open_source", lambda source, timeout=None: (camera, True))
    args = ["--no-display", "--stall-timeout", "0.5", "--record", str(tmp_path / "rec.mp4"),
            "--checkpoint", str(tiny_checkpoint)]
    assert webcam.main(args) == 1
    err = capsys.readouterr().err
    assert "stopped delivering" in err and "Traceback" not in err
    with VideoReader(tmp_path / "rec.mp4") as r:  # what was recorded before the failure is kept
        assert r.info.frame_count >= 1
    camera.unblock.set()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("xvfb-run") is None or shutil.which("xauth") is None,
                    reason="xvfb-run or xauth not installed (apt-get install xvfb xauth)")
def test_the_window_shows_the_overlay_on_a_virtual_display(tiny_checkpoint, media, tmp_path):
    shots = tmp_path / "shots"
    video = media / "group_pan.mp4"
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1024x768x24", sys.executable, "-m", "realtime.commands.webcam",
                           "--source", str(video), "--max-frames", "12", "--screenshot-after", "10",
                           "--screenshot-dir", str(shots), "--checkpoint", str(tiny_checkpoint),
                           "--label-all"],  # the untrained model is unsure of every face: show its labels anyway
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


# --- the input is never destroyed, outputs are checked first, a stop finishes the outputs ------------
def test_the_source_is_never_overwritten(tmp_path, media, capsys):
    video = tmp_path / "in.mp4"
    shutil.copy(media / "group_pan.mp4", video)
    before = video.read_bytes()
    (tmp_path / "link.mp4").symlink_to(video)
    cases = [("--log", video, "--log): it is the --source video"),
             ("--record", tmp_path / "." / "in.mp4", "--record): it is the --source video"),
             ("--record", tmp_path / "link.mp4", "--record): it is the --source video")]
    for option, path, message in cases:
        assert webcam.main(["--source", str(video), "--no-display", option, str(path),
                                     "--checkpoint", str(tmp_path / "missing.pt")]) == 1
        assert message in capsys.readouterr().err
    assert webcam.main(["--source", str(video), "--no-display", "--record", str(tmp_path / "a.mp4"),
                                 "--log", str(tmp_path / "a.mp4"), "--checkpoint", str(tmp_path / "missing.pt")]) == 1
    assert "--record and --log name the same file" in capsys.readouterr().err
    assert video.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "link.mp4"]


def test_outputs_are_checked_before_anything_starts(tmp_path, capsys):
    (tmp_path / "dir.mp4").mkdir()
    (tmp_path / "dir.jsonl").mkdir()
    (tmp_path / "file").write_text("")
    base = ["--no-display", "--checkpoint", str(tmp_path / "missing.pt")]
    cases = [(["--record", str(tmp_path / "dir.mp4")], "dir.mp4: it is a folder"),
             (["--log", str(tmp_path / "dir.jsonl")], "dir.jsonl: it is a folder"),
             (["--screenshot-after", "1", "--screenshot-dir", str(tmp_path / "file")], "it is a file, not a folder"),
             (["--record", str(tmp_path / "x.mkv")], "--record: use a .mp4 or .avi file"),
             (["--source", os.fsdecode(b"caf\xe9.mp4")], "not valid UTF-8")]
    for args, message in cases:
        assert webcam.main([*args, *base]) == 1
        err = capsys.readouterr().err
        assert message in err and "checkpoint" not in err, err
    from fs_faults import readonly_dir

    with readonly_dir(tmp_path / "ro") as ro:
        assert webcam.main(["--log", str(ro / "log.jsonl"), *base]) == 1
        assert "log.jsonl: " in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--camera", "-1"], ["--stall-timeout", "0"], ["--stall-timeout", "-1"],
                                  ["--stall-timeout", "nan"], ["--stall-timeout", "inf"], ["--max-frames", "-1"],
                                  ["--max-frames", "0"], ["--screenshot-after", "0"], ["--threads", "1000"],
                                  ["--margin", "inf"]])
def test_out_of_range_values_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as info:
        webcam.get_parser().parse_args(args)
    assert info.value.code == 2 and args[0] in capsys.readouterr().err


def test_the_log_is_replaced_as_its_help_says(capsys):
    with pytest.raises(SystemExit):
        webcam.get_parser().parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "an existing file is replaced" in out and "append" not in out


def test_a_recording_that_does_not_read_back_is_an_error_and_the_log_is_kept(tiny_checkpoint, media, tmp_path,
                                                                          monkeypatch, capsys):
    from fs_faults import DroppingWriter
    from realtime import video_io

    monkeypatch.setattr(video_io.cv2, "VideoWriter", DroppingWriter)  # a full disk: OpenCV says nothing
    camera = PhotoCamera(cv2.imread(str(media / "photos" / "surprised.jpg")), frames=8, then="end")
    monkeypatch.setattr(webcam, "open_source", lambda source, timeout=None: (camera, False))
    args = ["--no-display", "--record", str(tmp_path / "rec.mp4"), "--log", str(tmp_path / "log.jsonl"),
            "--checkpoint", str(tiny_checkpoint)]
    assert webcam.main(args) == 1
    assert "can be read back" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines[0]["kind"] == "stream" and len(lines) >= 2


@pytest.mark.slow
def test_a_stream_that_never_answers_is_told_within_the_stall_timeout(tiny_checkpoint, capsys):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts (the kernel's backlog), never answers
        port = server.getsockname()[1]
        start = time.monotonic()
        assert webcam.main(["--source", f"http://127.0.0.1:{port}/cam", "--stall-timeout", "1",
                                     "--no-display", "--checkpoint", str(tiny_checkpoint)]) == 1
        took = time.monotonic() - start
    err = capsys.readouterr().err
    assert f"no answer from the stream http://127.0.0.1:{port}/cam within 1 s" in err and took < 15


@pytest.mark.parametrize("signum", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM])
def test_stopping_a_headless_recording_finishes_it(tiny_checkpoint, media, tmp_path, signum):
    """Ctrl-C is the way to stop without --max-frames; SIGTERM how a service manager stops it. Either keeps the
    recording and the log, complete and of the same frames."""
    log, rec = tmp_path / "log.jsonl", tmp_path / "rec.mp4"
    log.write_text("an older log\n" * 1000)
    proc = subprocess.Popen([sys.executable, "-m", "realtime.commands.webcam", "--source", str(media / "group_pan.mp4"),
                             "--no-display", "--record", str(rec), "--log", str(log), "--threads", "1",
                             "--checkpoint", str(tiny_checkpoint)], cwd=ROOT,
                            env={**without_display(), "PYTHONFAULTHANDLER": "1"},  # a native crash shows where
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and \
            (not log.exists() or "older" in log.read_text()[:20] or log.read_text().count("\n") < 8):
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"(stopped by {signal.Signals(signum).name})" in out and "Traceback" not in err
    lines = log.read_text().splitlines()
    assert "older" not in lines[0] and json.loads(lines[0])["kind"] == "stream"
    frames = [json.loads(line) for line in lines[1:]]
    with VideoReader(rec) as r:
        assert r.info.frame_count == len(frames) >= 7 and sum(1 for _ in r) == len(frames)
    assert f"recorded {rec} ({len(frames)} frames" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl", "rec.mp4"]  # no hidden temporary file


def test_a_log_line_a_full_disk_cut_short_is_removed(tmp_path):
    from realtime.results import JsonlLog

    path = tmp_path / "log.jsonl"
    log = JsonlLog(path, {"schema": "x"})
    with open(path, "a") as fh:
        fh.write('{"frame": 1, "faces": [{"tr')  # what a full disk leaves of a line
    webcam.close_log(log, path)
    assert path.read_text() == '{"schema": "x"}\n'


def test_a_camera_number_and_a_source_together_are_a_usage_error(capsys):
    """--camera 0 is the default value: argparse's exclusion missed it, and the source silently won."""
    for args in (["--camera", "0", "--source", "clip.mp4"], ["--source", "clip.mp4", "--camera", "0"],
                 ["--camera", "1", "--source", "clip.mp4"]):
        with pytest.raises(SystemExit) as info:
            webcam.get_parser().parse_args(args)
        assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    parse = webcam.get_parser().parse_args
    assert webcam.source(parse([])) == 0 and webcam.source(parse(["--camera", "2"])) == 2
    assert webcam.source(parse(["--source", "clip.mp4"])) == "clip.mp4"


@pytest.mark.parametrize("kind", [pytest.param("null device", marks=pytest.mark.skipif(
    os.geteuid() != 0, reason="making a device node (mknod) needs root")), "pipe"])
def test_a_log_on_a_device_or_a_pipe_is_closed_without_an_error(tmp_path, kind):
    """A character device or a FIFO is written straight (fercore.atomic); closing the log must not seek in it
    to cut a half line, nor truncate it, nor sync it: the lines went through and the run succeeded."""
    from realtime.results import JsonlLog

    path = tmp_path / "log.jsonl"
    received = {}
    if kind == "pipe":
        os.mkfifo(path)
        reader = threading.Thread(target=lambda: received.update(data=path.read_bytes()))
        reader.start()
    else:
        os.mknod(path, 0o666 | 0o020000, os.makedev(1, 3))  # a null device of our own, as /dev/null is
    log = JsonlLog(path, {"schema": "x"})
    webcam.close_log(log, path)
    if kind == "pipe":
        reader.join(10)
        assert received["data"] == b'{"schema": "x"}\n'

import os
import signal
import socket
import threading
import time

import numpy as np
import pytest

from realtime import video_io
from realtime.video_io import (CaptureError, LatestFrameCapture, VideoError, VideoReader, open_source,
                               video_writer)
from fs_faults import DroppingWriter, contents, full_disk


def test_reading_a_real_video(media):
    with VideoReader(media / "group_pan.mp4") as reader:
        assert (reader.info.width, reader.info.height, reader.info.fps, reader.info.frame_count) == (640, 480, 25, 150)
        shapes = {f.shape for f in reader}
    assert shapes == {(480, 640, 3)} and reader.frames_read == 150


def test_missing_empty_truncated_and_non_video_files_fail_clearly(media, tmp_path):
    with pytest.raises(VideoError, match="not found"):
        VideoReader(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        VideoReader(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 100)
    with pytest.raises(VideoError, match="cannot decode"):
        VideoReader(tmp_path / "text.mp4")
    data = (media / "group_pan.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])  # mp4v keeps its index at the end
    with pytest.raises(VideoError, match="truncated"):
        VideoReader(tmp_path / "truncated.mp4")


def test_the_writer_only_puts_complete_files_in_place(tmp_path):
    frame = np.zeros((48, 64, 3), np.uint8)
    with video_writer(tmp_path / "ok.mp4", 25.0, (64, 48)) as w:
        for _ in range(5):
            w.write(frame)
        assert not (tmp_path / "ok.mp4").exists()  # still a temporary file
    with VideoReader(tmp_path / "ok.mp4") as r:
        assert sum(1 for _ in r) == 5 and r.info.fps == 25
    with pytest.raises(RuntimeError, match="boom"):
        with video_writer(tmp_path / "failed.mp4", 25.0, (64, 48)) as w:
            w.write(frame)
            raise RuntimeError("boom")
    with pytest.raises(VideoError, match="does not fit"):
        with video_writer(tmp_path / "wrong.mp4", 25.0, (64, 48)) as w:
            w.write(np.zeros((50, 64, 3), np.uint8))  # OpenCV would silently drop it
    with pytest.raises(VideoError, match="cannot write this video type"):
        with video_writer(tmp_path / "x.gif", 25.0, (64, 48)):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]  # no partial or temporary file left


class FakeCamera:
    """Delivers numbered frames every ``period`` seconds; then ends (read() False) or hangs like a dead driver."""

    def __init__(self, frames: int, period: float = 0.005, then: str = "end") -> None:
        self.n, self.frames, self.period, self.then = 0, frames, period, then
        self.released = False
        self.unblock = threading.Event()

    def read(self):
        if self.n >= self.frames:
            if self.then == "hang":
                self.unblock.wait()
            if self.then == "raise":
                raise OSError("device unplugged")
            return False, None
        time.sleep(self.period)
        self.n += 1
        return True, np.full((4, 4, 3), self.n, np.uint8)

    def release(self):
        self.released = True


def test_capture_hands_over_the_newest_frame_and_drops_the_rest():
    cam = FakeCamera(frames=40, period=0.002)
    capture = LatestFrameCapture(cam)
    got = []
    while (item := capture.read(timeout=2.0)) is not None:
        index, t, frame = item
        assert frame[0, 0, 0] == index + 1
        got.append(index)
        time.sleep(0.02)  # processing slower than the camera
    capture.close()
    assert got == sorted(got) and len(set(got)) == len(got)
    assert len(got) < 40  # frames were skipped, not queued
    assert got[-1] == 39  # the last frame is never lost
    assert cam.released


def test_capture_paces_a_file_at_its_frame_rate():
    capture = LatestFrameCapture(FakeCamera(frames=10, period=0.0), pace_fps=100.0)
    start = time.monotonic()
    indices = []
    while (item := capture.read(timeout=2.0)) is not None:
        indices.append(item[0])
    capture.close()
    assert time.monotonic() - start >= 0.08
    assert len(indices) >= 8  # a fast consumer sees (almost) every frame of a paced file


def test_a_camera_that_stops_delivering_is_reported_not_waited_for():
    cam = FakeCamera(frames=3, then="hang")
    capture = LatestFrameCapture(cam)
    while capture.read(timeout=2.0)[0] < 2:
        pass
    start = time.monotonic()
    with pytest.raises(CaptureError, match="stopped delivering"):
        capture.read(timeout=0.3)
    assert time.monotonic() - start < 2
    capture.close()  # returns although the reader thread is stuck in the driver
    assert not cam.released
    cam.unblock.set()


def test_a_capture_backend_error_ends_the_stream_with_the_error():
    capture = LatestFrameCapture(FakeCamera(frames=1, then="raise"))
    capture.read(timeout=2.0)
    assert capture.read(timeout=2.0) is None
    assert isinstance(capture.error, OSError)
    capture.close()


def test_sources_that_cannot_be_opened(tmp_path):
    with pytest.raises(CaptureError, match="cannot open camera 99"):
        open_source(99)
    with pytest.raises(CaptureError, match="cannot open camera 98"):
        open_source("98")  # digits mean a camera
    with pytest.raises(CaptureError, match="not found"):
        open_source(str(tmp_path / "missing.mp4"))
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(CaptureError, match="cannot open video source"):
        open_source(str(tmp_path / "text.mp4"))


# --- a full disk, odd sizes, a stream that never answers --------------------------------------------
def test_a_video_that_does_not_read_back_is_not_put_in_place(tmp_path, monkeypatch):
    monkeypatch.setattr(video_io.cv2, "VideoWriter", DroppingWriter)
    with pytest.raises(VideoError, match=r"writing .*out.avi failed: 3 of its 10 frames can be read back "
                                         r"\(is the disk full\? .* free there\); nothing written"):
        with video_writer(tmp_path / "out.avi", 25.0, (64, 48)) as w:
            for _ in range(10):
                w.write(np.zeros((48, 64, 3), np.uint8))
    assert contents(tmp_path) == []


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_real_full_disk_leaves_no_video(tmp_path, suffix):
    rng = np.random.default_rng(0)
    with full_disk(tmp_path / "full", free=64 * 1024) as disk:
        with pytest.raises(VideoError, match="can be read back"):
            with video_writer(disk / f"out{suffix}", 25.0, (320, 240)) as w:
                for _ in range(30):  # noise: about 1 MB however it is encoded
                    w.write(rng.integers(0, 256, (240, 320, 3), np.uint8))
        assert contents(disk) == []


@pytest.mark.parametrize("size", [(501, 283), (7, 5)])
def test_odd_sizes_are_padded_and_said(tmp_path, size):
    w_, h_ = size
    frame = np.full((h_, w_, 3), 255, np.uint8)
    with video_writer(tmp_path / "odd.avi", 25.0, size) as w:
        for _ in range(3):
            w.write(frame)
    assert w.encoded_size == (w_ + 1, h_ + 1)
    assert w.padding == (f"padded from {w_}x{h_} to {w_ + 1}x{h_ + 1} with black on the right and bottom "
                         "(the video encoders need even sizes)")
    with VideoReader(tmp_path / "odd.avi") as r:
        (first, *rest) = list(r)
    assert first.shape == (h_ + 1, w_ + 1, 3) and len(rest) == 2
    assert first[:h_, :w_].mean() > 200 and first[h_, :].max() < 60 and first[:, w_].max() < 60  # MJPG blurs edges
    with video_writer(tmp_path / "even.mp4", 25.0, (8, 6)) as w:
        w.write(np.zeros((6, 8, 3), np.uint8))
    assert w.padding is None


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers; it stops by itself after 30 s."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    connections = []

    def accept():
        try:
            while True:
                connections.append(server.accept()[0])
        except OSError:
            pass
    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for c in connections:
        c.close()


def test_a_stream_that_never_answers_fails_within_the_timeout(silent_server):
    start = time.monotonic()
    with pytest.raises(CaptureError, match=r"no answer from the stream http://127.0.0.1:\d+/live within 1 s"):
        open_source(f"http://127.0.0.1:{silent_server}/live", timeout=1.0)
    assert time.monotonic() - start < 5


def test_ctrl_c_works_while_a_stream_opens(silent_server):
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        open_source(f"rtsp://127.0.0.1:{silent_server}/live", timeout=20.0)
    assert time.monotonic() - start < 3

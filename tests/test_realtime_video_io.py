import threading
import time

import numpy as np
import pytest

from realtime.video_io import (CaptureError, LatestFrameCapture, VideoError, VideoReader, open_source,
                               video_writer)


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

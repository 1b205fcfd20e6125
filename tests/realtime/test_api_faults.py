"""The API's answers to bad input and faults: each one an error in words, never a wrong result."""
import math
import os
import threading
import time

import cv2
import numpy as np
import pytest

from realtime import EmotionRecognizer, ImageError, VideoError
from realtime.api import to_bgr


@pytest.fixture(scope="module")
def fer(tiny_checkpoint):
    with EmotionRecognizer(tiny_checkpoint) as recognizer:
        yield recognizer


def test_a_16_bit_pil_image_keeps_its_picture(tmp_path, sample_media):
    """PIL mode I;16: convert('RGB') made every pixel 255; the API reads it as a 16-bit file is read."""
    from PIL import Image

    gray = cv2.imread(str(sample_media / "photos" / "astronaut.jpg"), cv2.IMREAD_GRAYSCALE)
    wide = gray.astype(np.uint16) * 257  # the same picture in 16 bits
    path = tmp_path / "gray16.png"
    cv2.imwrite(str(path), wide)
    image = Image.open(path)
    assert image.mode.startswith("I")
    bgr = to_bgr(image)
    assert np.array_equal(bgr[:, :, 0], gray) and np.array_equal(bgr, to_bgr(path))


def test_a_truncated_pil_image_is_an_image_error(tmp_path, sample_media):
    from PIL import Image

    path = tmp_path / "cut.jpg"
    path.write_bytes((sample_media / "photos" / "astronaut.jpg").read_bytes()[:3000])
    with pytest.raises(ImageError, match="cannot read the PIL image"):
        to_bgr(Image.open(path))


def test_a_device_is_not_called_missing():
    with pytest.raises(ImageError, match="not a photo file"):
        to_bgr("/dev/zero")


def test_an_array_over_the_pixel_limit_is_refused_before_it_is_read():
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(20000, 38000), strides=(0, 0))
    with pytest.raises(ImageError, match="megapixels"):
        to_bgr(huge)


@pytest.mark.parametrize("value", [1.5, math.nan, -1, True, "2"])
def test_max_frames_must_be_a_whole_number(fer, sample_media, value):
    with pytest.raises(ValueError, match="max_frames must be a whole number"):
        fer.stream(sample_media / "portraits.mp4", max_frames=value)


def test_a_video_shorter_than_it_announces_raises_at_its_end(fer, sample_media, monkeypatch):
    from realtime import video_io

    real = video_io.VideoReader.__iter__

    def first_30(self):  # a file that announces 50 frames and decodes 30, as a truncated one does
        for i, frame in enumerate(real(self)):
            if i == 30:
                return
            yield frame
    monkeypatch.setattr(video_io.VideoReader, "__iter__", first_30)
    seen = []
    with pytest.raises(VideoError, match="of the 50 frames it announces"):
        for result in fer.stream(sample_media / "portraits.mp4"):
            seen.append(result)
    assert len(seen) == 30


def test_close_from_another_thread_waits_for_the_photo_being_read(tiny_checkpoint, sample_media, monkeypatch):
    """close() while recognize() runs: the running call returns its faces (it returned [] before), and the next
    call says the recognizer is closed."""
    fer = EmotionRecognizer(tiny_checkpoint)
    photo = sample_media / "photos" / "astronaut.jpg"
    expected = fer.recognize(photo)
    slow_process = fer._photos.process

    def process(*args, **kwargs):
        time.sleep(0.5)
        return slow_process(*args, **kwargs)
    monkeypatch.setattr(fer._photos, "process", process)
    results = []
    worker = threading.Thread(target=lambda: results.append(fer.recognize(photo)))
    worker.start()
    time.sleep(0.1)
    fer.close()
    worker.join()
    assert len(results[0]) == len(expected) >= 1
    with pytest.raises(RuntimeError, match="closed"):
        fer.recognize(photo)


@pytest.mark.parametrize("value", [math.nan, math.inf, -1, 0, 0.001, 1e9, "5", True, None])
def test_stall_timeout_is_checked_as_the_command_checks_it(fer, value):
    """0.01 to 86400 seconds, as fer-webcam --stall-timeout; nan once reached FFmpeg's own 30 s wait."""
    with pytest.raises(ValueError, match=r"stall_timeout must be a number of seconds in \[0.01, 86400\]"):
        fer.stream("http://127.0.0.1:9/cam", stall_timeout=value)


def test_a_stream_that_never_answers_is_told_within_the_stall_timeout(fer):
    """The opening of a stream is limited by stall_timeout too, as in fer-webcam (it waited FFmpeg's 30 s)."""
    import socket

    from realtime import CaptureError

    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts (the kernel's backlog), never answers
        url = f"http://127.0.0.1:{server.getsockname()[1]}/cam"
        start = time.monotonic()
        with pytest.raises(CaptureError, match=f"no answer from the stream {url} within 1 s"):
            next(fer.stream(url, stall_timeout=1))
        assert time.monotonic() - start < 10


def test_a_stream_made_before_close_says_so_when_it_starts(tiny_checkpoint, sample_media):
    """It used to end at once, as if the video had no frames."""
    fer = EmotionRecognizer(tiny_checkpoint)
    frames = fer.stream(sample_media / "portraits.mp4")
    fer.close()
    with pytest.raises(RuntimeError, match="closed"):
        next(frames)


def test_close_from_another_thread_ends_a_running_stream_at_its_next_frame(tiny_checkpoint, sample_media,
                                                                          monkeypatch):
    """close() while a stream's frame is being read in another thread: close() returns without an error (it
    raised 'generator already executing' in its thread), the frame being read is delivered, the stream ends
    there and releases its pipeline."""
    from realtime.pipeline import Pipeline

    fer = EmotionRecognizer(tiny_checkpoint)
    errors, closed = [], []
    real = Pipeline.process
    pipes = []

    def process(self, *args, **kwargs):
        pipes.append(self)
        if len(pipes) == 2:  # the second frame: close from another thread while it is read
            def close():
                try:
                    fer.close()
                    closed.append(True)
                except Exception as exc:  # noqa: BLE001 - what the test looks for
                    errors.append(exc)
            closer = threading.Thread(target=close)
            closer.start()
            closer.join(30)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Pipeline, "process", process)
    frames = fer.stream(sample_media / "portraits.mp4")
    assert [r.frame for r in (next(frames), next(frames))] == [0, 1]
    assert errors == [] and closed == [True]
    assert list(frames) == []
    with pytest.raises(RuntimeError, match="closed"):
        fer.stream(sample_media / "portraits.mp4")

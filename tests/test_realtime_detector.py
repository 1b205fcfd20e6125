import os

import cv2
import numpy as np
import pytest

from fercore.paths import WEIGHTS
from realtime.detector import DetectorError, FaceDetector, _native_logs_held_back

# What MediaPipe's short-range model finds at confidence 0.5 (../shared/media/SOURCE.md).
SHORT_RANGE_COUNTS = {"angry.jpg": 1, "disgusted.jpg": 1, "fearful.jpg": 1, "happy.jpg": 2, "neutral.jpg": 1,
                      "sad.jpg": 1, "surprised.jpg": 1, "face_rectangular.png": 1, "bbt2.jpg": 2, "bbt3.jpg": 2,
                      "bbt4.jpg": 6, "bbt5.jpg": 3}


@pytest.fixture(scope="module")
def photo_detector():
    with FaceDetector("short", video=False) as det:
        yield det


@pytest.mark.parametrize("name,count", sorted(SHORT_RANGE_COUNTS.items()))
def test_faces_are_found_where_people_are(photo_detector, media, name, count):
    image = cv2.imread(str(media / "photos" / name))
    found = photo_detector.detect(image)
    assert len(found) == count
    h, w = image.shape[:2]
    for d in found:
        x0, y0, x1, y1 = d.box
        assert 0.5 <= d.score <= 1.0
        assert x1 > x0 and y1 > y0 and x1 > 0 and y1 > 0 and x0 < w and y0 < h


def test_the_full_range_model_finds_small_and_distant_faces(media):
    bbt1 = cv2.imread(str(media / "photos" / "bbt1.jpg"))  # 1366x768, small faces
    obama = cv2.imread(str(media / "group" / "obama_and_biden.jpg"))  # 2000x1428
    with FaceDetector("short", video=False) as short:
        assert len(short.detect(bbt1)) == 0
    with FaceDetector("full", video=False) as full:
        assert len(full.detect(bbt1)) >= 4
        assert len(full.detect(obama)) == 2


def test_min_confidence_filters_faces(media):
    image = cv2.imread(str(media / "photos" / "bbt4.jpg"))
    with FaceDetector(video=False, min_confidence=0.5) as low, FaceDetector(video=False, min_confidence=0.99) as high:
        assert len(high.detect(image)) < len(low.detect(image))


def test_video_mode_survives_repeated_timestamps(media):
    image = cv2.imread(str(media / "photos" / "happy.jpg"))
    with FaceDetector(video=True) as det:
        for ts in (0, 0, 40, 40, 39):  # a camera clock can repeat a value; MediaPipe would refuse it
            assert len(det.detect(image, ts)) == 2
        with pytest.raises(ValueError, match="timestamp"):
            det.detect(image)


def test_non_bgr_frames_are_refused_clearly():
    with FaceDetector(video=False) as det:
        with pytest.raises(ValueError, match="BGR uint8"):
            det.detect(np.zeros((64, 64), np.uint8))
        assert det.detect(np.zeros((64, 64, 3), np.uint8)) == []


def test_missing_corrupt_and_foreign_models_fail_clearly(tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        FaceDetector(tmp_path / "missing.tflite")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(DetectorError, match="not a usable MediaPipe face-detection model"):
        FaceDetector(corrupt)
    with pytest.raises(DetectorError, match="not a usable"):
        FaceDetector(WEIGHTS / "LICENSE-mediapipe-face-detection.txt")  # a file that is no model


def test_native_chatter_is_held_back_but_other_stderr_output_is_kept(capfd):
    with _native_logs_held_back():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                    b"W0000 00:00:1795926809.374594   22677 inference_runner_litert.cc:1433] Input tensor ...\n"
                    b"a message from another thread\n")
    err = capfd.readouterr().err
    assert err == "a message from another thread\n"
    with pytest.raises(RuntimeError):
        with _native_logs_held_back():
            os.write(2, b"INFO: context for the failure\n")
            raise RuntimeError("detector failed")
    assert "INFO: context for the failure" in capfd.readouterr().err

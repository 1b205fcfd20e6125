import os

import cv2
import numpy as np
import pytest

from fercore.paths import ROOT, WEIGHTS

SAMPLES = ROOT / "samples"
from realtime.detector import (DETECTORS, Detection, DetectorError, FaceDetector, _maybe_closeup, _native_logs_held_back,
                               resolve_detector)

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


def test_a_photo_gets_a_second_look_when_it_may_be_a_close_up():
    big, small = Detection((0, 0, 50, 50), 0.9), Detection((0, 0, 20, 20), 0.9)
    assert _maybe_closeup([], 100, 100)  # nothing found
    assert _maybe_closeup([Detection((0, 0, 20, 20), 0.5)], 100, 100)  # only a weak face
    assert _maybe_closeup([big], 100, 100)  # one face covering a quarter: maybe part of a bigger one
    assert not _maybe_closeup([small], 100, 100) and not _maybe_closeup([big, small], 100, 100)


def test_where_both_full_range_looks_find_nothing_the_short_range_model_has_the_last_word():
    face = cv2.imread(str(SAMPLES / "photos" / "astronaut.jpg"))[70:190, 165:285]  # her face fills the picture
    with FaceDetector("full", video=False) as full:
        full._run = lambda rgb, x0=0, y0=0: []  # as where the full-range model finds no face
        found = full.detect(face)
        assert len(found) == 1 and found[0].score >= DETECTORS["short"].min_confidence
        full.close()
        assert full._fallback is None


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


def test_the_sparsity_warnings_of_the_full_range_model_stay_out_of_the_console(media, capfd):
    """Loading the full-range model makes LiteRT print 46 'WARNING: [model_load.cc:402] Sparsity tensors ...'
    lines; none may reach the user's console, and a real error line still must."""
    image = cv2.imread(str(media / "photos" / "bbt1.jpg"))
    capfd.readouterr()
    with FaceDetector("full", video=True) as det:
        det.detect(image, 0)
    with FaceDetector("full", video=False) as det:
        det.detect(image)
    assert capfd.readouterr().err == ""
    with _native_logs_held_back():
        os.write(2, b"WARNING: [model_load.cc:402] Sparsity tensors may not yet be fully supported.\n"
                    b"ERROR: [model_load.cc:99] a real problem\n")
    assert capfd.readouterr().err == "ERROR: [model_load.cc:99] a real problem\n"


def test_named_detectors_resolve_and_unknown_ones_fail_clearly(tmp_path):
    assert resolve_detector("full")[1].model == "full"
    for name, given, used in (("full", None, 0.3), ("short", None, 0.5), ("full", 0.7, 0.7)):
        with FaceDetector(name, video=False, min_confidence=given) as det:
            assert det.min_confidence == used
    assert DETECTORS["full"].min_confidence == 0.3
    with pytest.raises(DetectorError, match="unknown face detector 'medium'.*short, full"):
        FaceDetector("medium")
    with pytest.raises(DetectorError, match="not found"):
        resolve_detector(tmp_path / "missing.tflite")


def test_each_command_gets_its_measured_detector(tiny_checkpoint):
    """A live camera keeps the fast short-range model; photos and video files get the full-range model at its
    measured threshold, which results files record (README, "Face detection: which detector, measured")."""
    from realtime.commands import annotate, options, webcam
    from realtime.settings import build_pipeline, record

    settings = options.settings_from_args(annotate.parse_args(["in.jpg", "--json", "r.json", "--checkpoint",
                                                                str(tiny_checkpoint)]))
    assert settings.min_confidence is None
    with build_pipeline(settings, "photo") as pipe:
        assert (pipe.detector.name, pipe.detector.min_confidence) == ("full", 0.3)
        assert record(settings, "photo", pipe)["min_confidence"] == 0.3
    args = webcam.get_parser().parse_args(["--no-display", "--min-confidence", "0.7", "--checkpoint",
                                           str(tiny_checkpoint)])
    assert webcam.source_kind(args) == "camera"
    with build_pipeline(options.settings_from_args(args), "camera") as pipe:
        assert (pipe.detector.name, pipe.detector.min_confidence) == ("short", 0.7)


def test_an_image_half_built_when_an_interrupt_lands_is_finalised_quietly():
    import mediapipe as mp

    import realtime.detector  # noqa: F401  (sets the default its finaliser needs)

    half_built = mp.Image.__new__(mp.Image)  # as an interrupt leaves it: __init__ stopped before _image_ptr
    half_built.__del__()  # the finaliser of mediapipe 1.2 raised AttributeError here, printed on the way out

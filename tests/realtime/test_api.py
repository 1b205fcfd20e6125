"""The Python API (realtime.api.EmotionRecognizer) with the shipped models, on the sample media in samples/."""
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fercore.classes import EMOTIONS
from fercore.paths import ROOT
from models.errors import CheckpointError
from realtime.detector import DetectorError
from realtime import CaptureError, EmotionRecognizer, FaceResult, FrameResult, ImageError, VideoError


@pytest.fixture(scope="module")
def fer():
    with EmotionRecognizer(threads=1) as recognizer:
        yield recognizer


def python_api_examples() -> list[str]:
    """The ```python blocks of the README's "Python API" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Python API\n(.*?)^## ", text, re.S | re.M)
    assert section, "README.md has no '## Python API' section"
    return re.findall(r"^```python\n(.*?)^```", section[1], re.S | re.M)


def run_script(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def readme_outputs() -> list[str]:
    """The ```text blocks of the README's "Python API" section: what each example prints, in order."""
    section = re.search(r"^## Python API\n(.*?)^## ", (ROOT / "README.md").read_text(), re.S | re.M)
    return re.findall(r"^```text\n(.*?)^```", section[1], re.S | re.M)


def rounded(text: str) -> str:
    """Printed output with every decimal number rounded to two places, so a README cannot drift from the code
    but a last digit may move with the machine."""
    return re.sub(r"\d+\.\d+", lambda m: f"{float(m[0]):.2f}", text)


def test_the_readme_examples_print_what_the_readme_says_and_nothing_at_exit():
    examples, outputs = python_api_examples(), readme_outputs()
    assert len(examples) == len(outputs) == 2 and len(examples[0].strip().splitlines()) == 3
    for code, shown in zip(examples, outputs):
        done = run_script(code)
        # stderr empty: no MediaPipe chatter, and no "Exception ignored in FaceDetector.__del__" at exit, although
        # the first example never closes its recognizer
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert rounded(done.stdout) == rounded(shown), (done.stdout, shown)


def test_a_stream_left_open_is_cleaned_up_silently_at_exit():
    done = run_script("from realtime import EmotionRecognizer\n"
                      "fer = EmotionRecognizer()\n"
                      "frames = fer.stream('samples/portraits.mp4')\n"
                      "print(len(next(frames).faces), fer.top_emotion('samples/photos/astronaut.jpg')[0])\n")
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "2 happy\n", done.stderr


def test_recognize_returns_the_pipelines_face_results(fer, sample_media):
    faces = fer.recognize(sample_media / "photos" / "astronaut.jpg")
    assert len(faces) == 1 and isinstance(faces[0], FaceResult)
    face = faces[0]
    assert face.track == 1 and face.label == "happy" and face.confidence == face.probabilities["happy"]
    assert list(face.probabilities) == fer.classes == list(EMOTIONS)
    assert sum(face.probabilities.values()) == pytest.approx(1, abs=1e-4)
    x0, y0, x1, y1 = face.box
    assert 150 < (x0 + x1) / 2 < 300 and 60 < (y0 + y1) / 2 < 200
    assert fer.top_emotion(str(sample_media / "photos" / "astronaut.jpg")) == ("happy", face.confidence)


def test_every_kind_of_input_gives_the_same_faces(fer, sample_media):
    from PIL import Image

    path = sample_media / "photos" / "grace_hopper.jpg"
    bgr = cv2.imread(str(path))
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    expected = fer.recognize(path)
    assert len(expected) == 1
    same = [fer.recognize(str(path)), fer.recognize(bgr), fer.recognize(rgb, color="rgb"),
            fer.recognize(Image.open(path)), fer.recognize(Image.fromarray(rgb).convert("RGBA")),
            fer.recognize(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)), fer.recognize(rgb[:, ::-1][:, ::-1], color="rgb")]
    for faces in same:
        assert [(f.box, f.label) for f in faces] == [(f.box, f.label) for f in expected]
        assert faces[0].confidence == pytest.approx(expected[0].confidence, abs=1e-5)
    # The wrong channel order changes the picture the detector sees, and the API does not guess it.
    assert fer.recognize(rgb)[0].score != pytest.approx(expected[0].score, abs=1e-6)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    for g in (gray, gray[:, :, None]):
        assert len(fer.recognize(g)) == 1


def test_no_face(fer):
    assert fer.recognize(np.zeros((120, 160, 3), np.uint8)) == []
    assert fer.top_emotion(np.full((120, 160), 200, np.uint8)) == (None, None)


@pytest.mark.parametrize("image, error, message", [
    ("samples/photos/missing.jpg", ImageError, "image not found"),
    (np.zeros((50, 50, 3), np.float32), ImageError, r"uint8.*\(image \* 255\)"),
    (np.zeros((50, 50, 3), np.uint16), ImageError, r"uint8.*>> 8"),
    (np.zeros((3, 50, 50), np.uint8), ImageError, "channels-first"),
    (np.zeros((50, 50, 2), np.uint8), ImageError, r"shape \(H, W\), \(H, W, 3\) or \(H, W, 4\), got \(50, 50, 2\)"),
    (np.zeros((50,), np.uint8), ImageError, "shape"),
    (np.zeros((0, 50, 3), np.uint8), ImageError, "empty"),
    ([[0, 0], [0, 0]], TypeError, r"image path \(str or Path\), a numpy array or a PIL image, got builtins.list"),
    (None, TypeError, "got builtins.NoneType"),
])
def test_bad_input_fails_clearly(fer, image, error, message):
    with pytest.raises(error, match=message):
        fer.recognize(ROOT / image if isinstance(image, str) else image)


def test_unreadable_files_and_bad_arguments(fer, tmp_path):
    (tmp_path / "text.jpg").write_text("not a photo")
    with pytest.raises(ImageError, match="cannot decode"):
        fer.recognize(tmp_path / "text.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        fer.top_emotion(str(tmp_path / "empty.png"))
    with pytest.raises(ValueError, match="color must be 'bgr' or 'rgb'"):
        fer.recognize(np.zeros((50, 50, 3), np.uint8), color="RGB")
    with pytest.raises(VideoError, match="video not found"):
        fer.stream(tmp_path / "missing.mp4")  # at the call, before any iteration
    (tmp_path / "broken.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(VideoError, match="cannot decode"):
        next(fer.stream(tmp_path / "broken.mp4"))
    with pytest.raises(CaptureError, match="cannot open camera 99"):
        next(fer.stream(99))


def test_bad_settings_fail_when_made(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        EmotionRecognizer(tmp_path / "missing.pt")
    with pytest.raises(DetectorError, match="medium"):
        EmotionRecognizer(detector="medium")
    with pytest.raises(ValueError, match="min_confidence"):
        EmotionRecognizer(min_confidence=2)
    with pytest.raises(ValueError, match="smoothing"):
        EmotionRecognizer(smoothing=1.0)


def test_a_stream_gives_frames_with_track_ids(fer, sample_media):
    results = list(fer.stream(sample_media / "portraits.mp4", max_frames=12))
    assert len(results) == 12 and all(isinstance(r, FrameResult) for r in results)
    assert [r.frame for r in results] == list(range(12))
    assert [r.time for r in results] == pytest.approx([i / 25 for i in range(12)])
    assert all(sorted(f.track for f in r.faces) == [1, 2] for r in results)
    # the same person keeps the same id: the left face is the astronaut, smiling, in every frame
    left = [min(r.faces, key=lambda f: f.box[0]) for r in results]
    assert {f.track for f in left} == {left[0].track} and {f.label for f in left} == {"happy"}
    # each stream has its own tracks and ids; the whole clip, with the frames to draw on
    pairs = list(fer.stream(str(sample_media / "portraits.mp4"), with_frames=True))
    assert len(pairs) == 50 and pairs[0][1].shape == (270, 480, 3) and pairs[0][1].dtype == np.uint8
    assert {f.track for r, _ in pairs for f in r.faces} == {1, 2}


def test_close_releases_everything_and_is_final(sample_media):
    fer = EmotionRecognizer(threads=1)
    assert fer.top_emotion(sample_media / "photos" / "astronaut.jpg")[0] == "happy"
    stream = fer.stream(sample_media / "portraits.mp4")
    assert len(next(stream).faces) == 2
    with fer:  # the context manager closes it
        pass
    with pytest.raises(StopIteration):
        next(stream)  # the open stream was closed with it
    with pytest.raises(RuntimeError, match="closed"):
        fer.recognize(sample_media / "photos" / "astronaut.jpg")
    with pytest.raises(RuntimeError, match="closed"):
        fer.stream(sample_media / "portraits.mp4")
    fer.close()  # again: nothing happens
    assert "closed" in repr(fer)


def test_leaving_a_stream_early_releases_its_detector(fer, sample_media):
    from realtime import detector

    def open_detectors() -> int:
        return sum(1 for d in list(detector._OPEN) if d._detector is not None)

    before = open_detectors()
    stream = fer.stream(sample_media / "portraits.mp4")
    next(stream)
    assert open_detectors() == before + 1
    stream.close()
    assert open_detectors() == before
    for result in fer.stream(sample_media / "portraits.mp4"):
        assert open_detectors() == before + 1
        break
    assert open_detectors() == before and len(result.faces) == 2

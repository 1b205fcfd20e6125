import json
import shutil
from contextlib import contextmanager

import cv2
import numpy as np
import pytest


from realtime.commands import evaluate as evaluate_module
from realtime.commands.evaluate import main
from realtime.labelled import subject
from realtime.results import FaceResult, FrameResult
from fs_faults import contents

# Each posed portrait in its emotion's folder; a photo with no face as the miss.
PORTRAITS = {"angry": "angry.jpg", "disgust": "disgusted.jpg", "fearful": "fearful.jpg", "happy": "happy.jpg",
             "neutral": "neutral.jpg", "sad": "sad.jpg", "surprised": "surprised.jpg"}
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture
def labelled(media, tmp_path):
    root = tmp_path / "labelled"
    for folder, photo in PORTRAITS.items():
        (root / folder).mkdir(parents=True)
        shutil.copy(media / "photos" / photo, root / folder / photo)
    cv2.imwrite(str(root / "neutral" / "wall.jpg"), np.full((200, 300, 3), 128, np.uint8))
    return root


def test_reports_detection_rate_coverage_accuracy_and_each_photo(tiny_checkpoint, labelled, tmp_path, capsys):
    report, png = tmp_path / "report.json", tmp_path / "cm.png"
    args = [str(labelled), "--json", str(report), "--confusion", str(png), "--checkpoint", str(tiny_checkpoint),
            "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "detection rate 87.5%" in out and "confusion matrix" in out and "wall.jpg" in out
    r = json.loads(report.read_text())
    assert (r["photos"], r["readable"], r["detected"]) == (8, 8, 7)
    results = {e["path"].rsplit("/", 1)[1]: e for e in r["results"]}
    assert sorted(results) == sorted([*PORTRAITS.values(), "wall.jpg"])
    assert results["wall.jpg"] == {"path": str(labelled / "neutral" / "wall.jpg"), "true": "neutral",
                                   "predicted": None, "correct": False, "confidence": None, "score": None,
                                   "box": None, "faces": 0, "reason": "no face found"}
    labelled_ = [e for e in r["results"] if e["predicted"] is not None]
    for e in r["results"]:
        if e["faces"]:
            assert len(e["box"]) == 4 and 0 < e["score"] <= 1 and 0 <= e["confidence"] <= 1
            assert (e["predicted"] is None) == (e["reason"] is not None)  # a face the model cannot read says why
            assert e["correct"] == (e["predicted"] == e["true"])
    assert r["labelled"] == len(labelled_) and r["coverage"] == pytest.approx(len(labelled_) / 7)
    assert f"coverage {r['coverage']:.1%}" in out
    cm = r["report"]["confusion_matrix"]
    assert sum(map(sum, cm)) == len(labelled_)
    correct = sum(e["correct"] for e in r["results"])
    assert sum(cm[i][i] for i in range(7)) == correct
    assert r["end_to_end_accuracy"] == pytest.approx(correct / 8)
    assert [p.rsplit("/", 1)[1] for p in r["undetected"]] == ["wall.jpg"]
    assert png.stat().st_size > 1000


def test_bad_folders_give_clear_messages(tiny_checkpoint, labelled, tmp_path, capsys):
    ckpt = ["--checkpoint", str(tiny_checkpoint)]
    assert main([str(tmp_path / "missing"), *ckpt]) == 1
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty" / "happy").mkdir(parents=True)
    assert main([str(tmp_path / "empty"), *ckpt]) == 1
    assert "no photos" in capsys.readouterr().err
    (labelled / "bored").mkdir()
    assert main([str(labelled), *ckpt]) == 1
    assert "unknown emotion folder 'bored'" in capsys.readouterr().err


def face(score, box, label="happy", reason=None):
    probs = {c: 0.9 if c == "happy" else 0.1 / 6 for c in CLASSES}
    result = FaceResult(1, box, score, label, 0.9, probs)
    result.reason = reason
    return result


def test_the_subject_is_the_largest_face_the_detector_is_sure_of():
    small_sure, big_doubtful = face(0.95, (10, 10, 60, 60)), face(0.5, (0, 0, 300, 300))  # a poster, a hand
    assert subject([small_sure, big_doubtful]) is small_sure
    big_sure = face(0.8, (100, 100, 250, 250))  # 0.8 >= 0.8 x 0.95: both sure, the larger is the subject
    assert subject([small_sure, big_doubtful, big_sure]) is big_sure


class StubPipeline:
    """Faces chosen per photo name: what each photo 'shows' to the evaluation."""

    classes = CLASSES

    def __init__(self, faces_by_name):
        self.faces_by_name = faces_by_name

    def process(self, image, index, time_s, source):
        return FrameResult(index, None, self.faces_by_name[source.rsplit("/", 1)[1]], source)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@pytest.fixture
def stub(monkeypatch, tmp_path):
    root = tmp_path / "photos"
    for folder, name in (("happy", "a.png"), ("happy", "b.png"), ("sad", "c.png"), ("sad", "d.png")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / folder / name), np.zeros((50, 50, 3), np.uint8))
    pipe = StubPipeline({"a.png": [face(0.9, (0, 0, 20, 20))],  # right
                         "b.png": [face(0.9, (0, 0, 20, 20), label=None, reason="blurred")],  # cannot be read
                         "c.png": [face(0.9, (0, 0, 20, 20))],  # wrong
                         "d.png": []})  # missed
    monkeypatch.setattr(evaluate_module, "build_pipeline", lambda settings, kind: pipe)
    monkeypatch.setattr(evaluate_module, "record", lambda settings, kind, pipe: {})
    return root


def test_a_face_the_model_cannot_read_counts_as_not_correct_and_lowers_coverage(stub, tmp_path, capsys):
    assert main([str(stub), "--json", str(tmp_path / "r.json"), "--no-progress"]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert (r["photos"], r["readable"], r["detected"], r["labelled"]) == (4, 4, 3, 2)
    assert r["coverage"] == pytest.approx(2 / 3) and r["accuracy"] == 0.5 and r["end_to_end_accuracy"] == 0.25
    by_name = {e["path"].rsplit("/", 1)[1]: e for e in r["results"]}
    assert (by_name["a.png"]["predicted"], by_name["a.png"]["correct"]) == ("happy", True)
    assert (by_name["b.png"]["predicted"], by_name["b.png"]["reason"]) == (None, "blurred")
    assert (by_name["c.png"]["predicted"], by_name["c.png"]["correct"], by_name["c.png"]["true"]) == \
        ("happy", False, "sad")
    assert by_name["d.png"]["reason"] == "no face found"
    assert [p.rsplit("/", 1)[1] for p in r["uncertain"]] == ["b.png"]
    assert "b.png (blurred)" in capsys.readouterr().out


def test_outputs_are_checked_before_the_evaluation(labelled, tmp_path, capsys):
    """Each is refused before the model loads (the checkpoint named does not exist)."""
    (tmp_path / "dir.json").mkdir()
    before = contents(tmp_path)
    cases = [(["--json", str(labelled / "report.json")], "inside the photo folder"),
             (["--confusion", str(labelled / "happy" / "cm.png")], "inside the photo folder"),
             (["--confusion", str(tmp_path / "r.txt")], "cannot draw a picture as a .txt file"),
             (["--confusion", str(tmp_path / "cm")], "cannot draw a picture as a name without a suffix"),
             (["--json", str(tmp_path / "dir.json")], "dir.json: it is a folder"),
             (["--json", str(tmp_path / "x.png"), "--confusion", str(tmp_path / "x.png")], "name the same file")]
    for args, message in cases:
        assert main([str(labelled), *args, "--checkpoint", str(tmp_path / "missing.pt")]) == 1
        err = capsys.readouterr().err
        assert message in err and "checkpoint" not in err and "tmp'" not in err, err
    assert contents(tmp_path) == before


def test_a_report_that_fails_at_the_end_keeps_the_picture(stub, tmp_path, monkeypatch, capsys):
    real = evaluate_module.atomic_path

    @contextmanager
    def full(path):
        with real(path) as tmp:
            yield tmp
            raise OSError(28, "No space left on device")
    monkeypatch.setattr(evaluate_module, "atomic_path", full)
    assert main([str(stub), "--json", str(tmp_path / "r.json"), "--confusion", str(tmp_path / "cm.png"),
                          "--no-progress"]) == 1
    assert "error: cannot write " + str(tmp_path / "r.json") + ": the disk is full" in capsys.readouterr().err
    assert (tmp_path / "cm.png").stat().st_size > 1000 and not (tmp_path / "r.json").exists()
    assert [p for p in contents(tmp_path) if p.startswith(".")] == []

import json
import shutil

import pytest

from realtime import cli
from realtime.evaluate import main

# Each posed portrait in its emotion's folder; bbt1 (small faces the short-range model misses) as a miss.
PORTRAITS = {"angry": "angry.jpg", "disgust": "disgusted.jpg", "fearful": "fearful.jpg", "happy": "happy.jpg",
             "neutral": "neutral.jpg", "sad": "sad.jpg", "surprised": "surprised.jpg"}


@pytest.fixture
def labelled(media, tmp_path):
    root = tmp_path / "labelled"
    for folder, photo in PORTRAITS.items():
        (root / folder).mkdir(parents=True)
        shutil.copy(media / "photos" / photo, root / folder / photo)
    shutil.copy(media / "photos" / "bbt1.jpg", root / "neutral" / "bbt1.jpg")
    return root


def test_reports_detection_rate_accuracy_and_confusion(tiny_checkpoint, labelled, tmp_path, capsys):
    report, png = tmp_path / "report.json", tmp_path / "cm.png"
    args = [str(labelled), "--json", str(report), "--confusion", str(png), "--checkpoint", str(tiny_checkpoint),
            "--no-progress"]
    assert cli.run(main, args) == 0
    out = capsys.readouterr().out
    assert "detection rate 87.5%" in out and "confusion matrix" in out and "bbt1.jpg" in out
    r = json.loads(report.read_text())
    assert (r["photos"], r["readable"], r["detected"]) == (8, 8, 7)
    cm = r["report"]["confusion_matrix"]
    assert [sum(row) for row in cm] == [1, 1, 1, 1, 1, 1, 1]  # one detected photo per class, folder aliases mapped
    assert r["accuracy"] == pytest.approx(sum(cm[i][i] for i in range(7)) / 7)
    assert r["end_to_end_accuracy"] == pytest.approx(sum(cm[i][i] for i in range(7)) / 8)
    assert [p.rsplit("/", 1)[1] for p in r["undetected"]] == ["bbt1.jpg"]
    assert png.stat().st_size > 1000


def test_bad_folders_give_clear_messages(tiny_checkpoint, labelled, tmp_path, capsys):
    ckpt = ["--checkpoint", str(tiny_checkpoint)]
    assert cli.run(main, [str(tmp_path / "missing"), *ckpt]) == 1
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty" / "happy").mkdir(parents=True)
    assert cli.run(main, [str(tmp_path / "empty"), *ckpt]) == 1
    assert "no photos" in capsys.readouterr().err
    (labelled / "bored").mkdir()
    assert cli.run(main, [str(labelled), *ckpt]) == 1
    assert "unknown emotion folder 'bored'" in capsys.readouterr().err

import json
import shutil

import pytest

from fercore.readability import ReadabilityLimits
from models.checkpoint import read_checkpoint
from tools.readability_curves import limit, main


def test_a_limit_is_where_accuracy_crosses_the_target():
    assert limit([10, 20, 30], [0.3, 0.5, 0.7], 0.4, decreasing=False) == pytest.approx(15)
    assert limit([0, 20, 40], [0.7, 0.6, 0.4], 0.5, decreasing=True) == pytest.approx(30)
    assert limit([0, 20, 40], [0.7, 0.6, 0.55], 0.5, decreasing=True) is None  # never falls that far


@pytest.mark.slow
def test_the_command_measures_every_curve_on_a_labelled_folder(shared_fer, tiny_checkpoint, tmp_path, capsys):
    faces = tmp_path / "val"
    for emotion in ("happy", "sad", "surprise"):
        (faces / emotion).mkdir(parents=True)
        for photo in sorted((shared_fer / "val" / emotion).iterdir())[:8]:
            shutil.copy(photo, faces / emotion / photo.name)
    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, ckpt)
    assert main(["--checkpoint", str(ckpt), "--data", str(faces), "--store"]) == 0
    out = tmp_path / "eval" / "model"  # the default: eval/<name>/ beside the checkpoint
    result = json.loads((out / "readability.json").read_text())
    assert ReadabilityLimits.from_dict(read_checkpoint(ckpt)["readability"]) == ReadabilityLimits.from_curves(
        result["limits"]) == ReadabilityLimits.from_dict(result["app_limits"])
    assert result["n"] == 24
    assert set(result["limits"]) == {"min_confidence", "min_size", "min_sharpness", "max_roll", "max_roll_aligned",
                                     "max_yaw"}
    assert len(result["roll"]["aligned_accuracy"]) == len(result["roll"]["degrees"])
    assert result["size"]["accuracy"][-1] == pytest.approx(result["clean_accuracy"])  # full size = clean val
    assert (out / "readability.png").stat().st_size > 10_000

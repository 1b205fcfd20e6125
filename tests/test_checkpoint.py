import pytest
import torch

from fercore.classes import EMOTIONS
from models import build_model
from models.checkpoint import CheckpointError, atomic_save, load_model, make_checkpoint, read_checkpoint


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = build_model("cnn", width=0.25).eval()
    with torch.no_grad():  # make BatchNorm statistics non-trivial so they must travel too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
    path = tmp_path / "model.pt"
    atomic_save(make_checkpoint(model, EMOTIONS, config={"seed": 3}, epoch=4,
                                metrics={"val_acc": 0.5}), path)
    loaded, ckpt = load_model(path)
    x = torch.randn(4, 1, 48, 48)
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert ckpt["classes"] == list(EMOTIONS) and ckpt["epoch"] == 4 and ckpt["metrics"]["val_acc"] == 0.5
    assert ckpt["preprocessing"] == {"size": 48, "mean": 0.5, "std": 0.5, "margin": 0.15}
    assert ckpt["config"] == {"seed": 3}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_missing_file_and_foreign_files_get_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        read_checkpoint(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(garbage)


def test_failed_save_leaves_no_file(tmp_path):
    path = tmp_path / "model.pt"

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_save({"x": Unsaveable()}, path)
    assert list(tmp_path.iterdir()) == []

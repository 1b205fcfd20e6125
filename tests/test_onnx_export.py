import numpy as np
import onnxruntime as ort
import pytest
import torch

from fercore.classes import EMOTIONS
from models import build_model
from models.checkpoint import CheckpointError, atomic_save, make_checkpoint
from models.onnx_export import export_onnx, main
from models.onnx_runtime import read_metadata


def test_onnx_gives_the_same_predictions_as_pytorch(tmp_path):
    torch.manual_seed(0)
    model = build_model("cnn", width=0.25).eval()
    path = tmp_path / "m.pt"
    atomic_save(make_checkpoint(model, EMOTIONS, metrics={"val_acc": 0.4}), path)
    assert main([str(path)]) == 0
    onnx_path = tmp_path / "m.onnx"
    meta = read_metadata(onnx_path)
    assert meta["classes"] == list(EMOTIONS) and meta["preprocessing"]["size"] == 48
    assert meta["arch_args"] == {"width": 0.25} and meta["metrics"]["val_acc"] == 0.4
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 48, 48)  # a batch: the face axis is dynamic
    got = session.run(None, {"faces": x.numpy()})[0]
    with torch.inference_mode():
        want = model(x).numpy()
    assert np.allclose(got, want, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_export_of_a_foreign_file_fails_clearly(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(CheckpointError):
        export_onnx(bad)
    assert not (tmp_path / "bad.onnx").exists()


def test_export_command_errors(tmp_path, capsys):
    """A missing or foreign checkpoint is a user error (exit status 1, one line), a missing argument a usage
    error (2); see also tests/test_cli_convention.py."""
    assert main([str(tmp_path / "missing.pt")]) == 1
    assert capsys.readouterr().err == f"error: checkpoint not found: {tmp_path / 'missing.pt'}\n"
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    assert main([str(bad)]) == 1
    assert "not a checkpoint of this project" in capsys.readouterr().err
    assert main([]) == 2
    assert "the following arguments are required: checkpoint" in capsys.readouterr().err

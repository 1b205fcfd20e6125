import numpy as np
import onnxruntime as ort
import pytest
import torch

from fercore.classes import EMOTIONS
from models import build_model
from models.checkpoint import CheckpointError, atomic_save, make_checkpoint
from models.onnx_export import export_onnx, main, read_metadata


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

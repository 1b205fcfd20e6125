"""A model whose finite weights overflow gives NaN or infinite outputs: every way of running it (the app's
classifier on either backend, training's prediction and the commands) refuses them in one line instead of
reporting a label with confidence NaN."""
import numpy as np
import pytest
import torch

from models.checkpoint import atomic_save, read_checkpoint
from models.errors import CheckpointError
from realtime.classifier import load_classifier

NOT_NUMBERS = "the model's outputs are not numbers"


@pytest.fixture(scope="module")
def overflowing(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint with its last layer at 3e38 (finite, so it loads): its logits overflow to infinity."""
    ckpt = read_checkpoint(tiny_checkpoint)
    last = [k for k, v in ckpt["model"].items() if v.shape[:1] == (7,) and k.endswith("weight")][-1]
    ckpt["model"][last] = torch.full_like(ckpt["model"][last], 3e38)
    path = tmp_path_factory.mktemp("overflow") / "overflow.pt"
    atomic_save(ckpt, path)
    return path


def test_the_classifier_refuses_non_finite_outputs(overflowing):
    faces = [np.random.default_rng(0).integers(0, 256, (60, 50), dtype=np.uint8) for _ in range(2)]
    for backend, precision in (("torch", None), ("onnx", "fp32")):
        classifier = load_classifier(overflowing, backend=backend, precision=precision)
        with pytest.raises(CheckpointError, match=f"{NOT_NUMBERS} .* for 2 of 2 faces"):
            classifier.predict(faces)


def test_training_commands_refuse_non_finite_outputs(overflowing, tiny_fer_csv, tmp_path, capsys):
    from training.evaluate import main as evaluate_main

    assert evaluate_main([str(overflowing), "--data", str(tiny_fer_csv), "--cache-dir", "none", "--out",
                          str(tmp_path / "eval")]) == 1
    err = capsys.readouterr().err
    err = err[err.index("error: "):]
    assert err.startswith(f"error: {NOT_NUMBERS}") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "eval" / "metrics_val.json").exists()


def test_a_file_that_is_not_a_checkpoint_is_named_in_one_short_line(tmp_path, tiny_checkpoint):
    """PyTorch's own message (advice to load with weights_only=False, which must never be followed here) is not
    passed on: the line says what the file is and what was expected."""
    import pickle
    from pathlib import Path

    from models.checkpoint import read_checkpoint
    from models.onnx_export import export_onnx

    files = {"photo.pt": (b"\xff\xd8\xff\xe0" + bytes(600), "a JPEG image"),
             "notes.pt": (b"my notes\n" * 10, "a text file"),
             "empty.pt": (b"", "an empty file"),
             "gadget.pt": (pickle.dumps(Path("x")), "a pickle of objects other than tensors (not loaded"),
             "cut.pt": (tiny_checkpoint.read_bytes()[:5000], "a zip archive that PyTorch cannot read")}
    for name, (data, kind) in files.items():
        (tmp_path / name).write_bytes(data)
    files["model.onnx"] = (None, "an ONNX model")
    export_onnx(tiny_checkpoint, tmp_path / "model.onnx")
    for name, (_, kind) in files.items():
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name} is not a readable PyTorch checkpoint: it is {kind}"), message
        assert "weights_only" not in message and len(message) < 200 + len(str(tmp_path)), message


def test_a_damaged_cached_export_is_replaced(tiny_checkpoint, tmp_path, monkeypatch):
    """The app's cache re-exports a damaged export: only a file a user names is kept when it is not a model."""
    from realtime import classifier
    from models.onnx_runtime import checkpoint_digest

    monkeypatch.setattr(classifier, "ONNX_CACHE", tmp_path / "cache")
    damaged = tmp_path / "cache" / f"{checkpoint_digest(tiny_checkpoint)[:32]}.onnx"
    damaged.parent.mkdir()
    damaged.write_bytes(b"half an export")
    faces = [np.full((48, 48), 128, np.uint8)]
    assert load_classifier(tiny_checkpoint, backend="onnx", precision="fp32").predict(faces).shape == (1, 7)
    assert damaged.stat().st_size > 1000

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

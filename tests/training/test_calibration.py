import numpy as np
import pytest
import torch

from fercore.calibration import fit_temperature, nll, reliability, softmax
from models.checkpoint import read_checkpoint
from realtime.classifier import load_classifier
from training.calibrate import main as calibrate_main


def overconfident(n=4000, k=7, scale=3.0, seed=0):
    """Logits whose softmax at temperature ``scale`` is exactly calibrated: labels drawn from it."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.5, (n, k))
    probs = softmax(true_logits)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    return true_logits * scale, labels


def test_temperature_scaling_keeps_every_prediction_and_lowers_nll():
    logits, labels = overconfident()
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    assert np.array_equal(softmax(logits, t).argmax(1), logits.argmax(1))
    assert nll(logits, labels, t) < nll(logits, labels) - 0.1
    assert reliability(softmax(logits, t), labels)["ece"] < 0.03 < reliability(softmax(logits), labels)["ece"]


def test_reliability_bins_count_every_example_and_ece_is_their_weighted_gap():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    rel = reliability(probs, labels, bins=10)
    assert sum(rel["count"]) == 4
    # bin 0.9: confidence 0.9, accuracy 0.5 (2 examples); bin 0.6: 0.6 vs 1.0 (2 examples)
    assert rel["ece"] == pytest.approx((2 * 0.4 + 2 * 0.4) / 4)


def test_calibrate_command_stores_a_temperature_that_every_backend_applies(tiny_fer_csv, tiny_checkpoint, tmp_path):
    out = tmp_path / "calibrated.pt"
    assert calibrate_main([str(tiny_checkpoint), "--data", str(tiny_fer_csv), "--cache-dir", "none",
                           "--out", str(out)]) == 0
    ckpt = read_checkpoint(out)
    t = ckpt["temperature"]
    assert t != 1.0 and ckpt["metrics"]["calibration"]["temperature"] == t
    assert (tmp_path / "eval" / "calibrated" / "reliability_val.png").stat().st_size > 1000  # eval/<name>/
    faces = [np.random.default_rng(1).integers(0, 256, (60, 50), dtype=np.uint8) for _ in range(3)]
    plain = load_classifier(tiny_checkpoint, backend="torch")
    with torch.inference_mode():
        logits = plain.model(torch.from_numpy(plain.prepare(faces))).numpy()
    for backend in ("torch", "onnx"):
        np.testing.assert_allclose(load_classifier(out, backend=backend, precision="fp32").predict(faces),
                                   softmax(logits, t),
                                   atol=1e-5)


@pytest.mark.parametrize("split", ["test", "PrivateTest"])
def test_the_temperature_is_never_fitted_on_the_test_split(split, tiny_fer_csv, tiny_checkpoint, tmp_path, capsys):
    """The help says 'never test': fitting there would leave no untouched split to measure the model on."""
    out = tmp_path / "calibrated.pt"
    assert calibrate_main([str(tiny_checkpoint), "--data", str(tiny_fer_csv), "--cache-dir", "none", "--split", split,
                           "--out", str(out)]) == 2
    assert "the test split is never used to fit" in capsys.readouterr().err and not out.exists()

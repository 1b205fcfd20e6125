"""The shipped models (default, fast, and the accurate ensemble's int8 export): each loads on its own, scores on val what it recorded, carries the
readability limits measured for it, and its ONNX export agrees with PyTorch."""

import dataclasses
import json

import numpy as np
import onnxruntime as ort
import pytest

from fercore.classes import EMOTIONS
from fercore.paths import WEIGHTS
from fercore.readability import ReadabilityLimits
from models.checkpoint import load_model
from models.inference import predict
from models.onnx_runtime import checkpoint_digest, export_digests, read_metadata
from models.preprocessing import Preprocessing
from training.data import load_split


@pytest.fixture(scope="module", params=["default", "fast"])
def shipped(request):
    model, ckpt = load_model(WEIGHTS / f"{request.param}.pt")
    return model, ckpt, request.param


@pytest.fixture(scope="module")
def val(shared_fer, fer_cache):
    return load_split(shared_fer, "val", fer_cache, progress=False)


def test_shipped_checkpoint_describes_itself(shipped):
    model, ckpt, name = shipped
    assert ckpt["classes"] == list(EMOTIONS)
    assert Preprocessing.from_dict(ckpt["preprocessing"]) == Preprocessing(size=48, mean=0.5, std=0.5, margin=0.15)
    assert ckpt["arch"] == "cnn" and "training" not in ckpt  # no optimizer state in the shipped file
    assert ckpt["arch_args"]["width"] == {"default": 0.75, "fast": 0.5}[name]
    assert (WEIGHTS / f"{name}.pt").stat().st_size < 20 * 2**20


def test_shipped_model_carries_the_readability_limits_measured_for_it(shipped):
    """The limits stored in the checkpoint and its exports are those its FER-val curves measured
    (weights/eval/<name>/readability.json, `python -m tools.readability_curves --store`), with the head turn and
    label confidence chosen on the real faces where that was measured (real_faces_limits.json,
    `python -m tools.real_footage --choose`, docs/choosing_models.md)."""
    _, ckpt, name = shipped
    measured = json.loads((WEIGHTS / "eval" / name / "readability.json").read_text())
    assert measured["checkpoint"] == f"weights/{name}.pt"
    limits = ReadabilityLimits.from_curves(measured["limits"])
    real = WEIGHTS / "eval" / name / "real_faces_limits.json"
    if real.is_file():
        chosen = json.loads(real.read_text())["chosen"]
        assert chosen["coverage"] >= 0.7
        limits = dataclasses.replace(limits, max_yaw=chosen["max_yaw"], min_confidence=chosen["min_confidence"])
    assert ReadabilityLimits.from_dict(ckpt["readability"]) == limits
    for export in (f"{name}.onnx", f"{name}.int8.onnx"):
        assert read_metadata(WEIGHTS / export)["readability"] == ckpt["readability"]


@pytest.mark.slow
def test_shipped_model_scores_on_val_what_it_recorded(shipped, val):
    model, ckpt, _ = shipped
    images, labels = val
    probs = predict(model, images, model.preprocessing)
    accuracy = float((probs.argmax(1) == labels).mean())
    assert accuracy == pytest.approx(ckpt["metrics"]["val_acc"], abs=1e-3)
    assert accuracy > 0.5  # far above the 25% of always answering "happy"


@pytest.mark.slow
def test_shipped_onnx_export_gives_the_same_predictions(shipped, val):
    model, ckpt, name = shipped
    images = val[0][:512]
    meta = read_metadata(WEIGHTS / f"{name}.onnx")
    assert meta["classes"] == ckpt["classes"] and meta["metrics"] == ckpt["metrics"]
    session = ort.InferenceSession(str(WEIGHTS / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    import torch

    x = model.preprocessing.normalize(torch.from_numpy(images))
    onnx_logits = session.run(None, {"faces": x.numpy()})[0]
    torch_probs = predict(model, images, model.preprocessing)
    assert (onnx_logits.argmax(1) == torch_probs.argmax(1)).mean() == 1.0
    assert meta["temperature"] == ckpt["temperature"] == model.temperature
    assert meta["checkpoint_sha256"] == checkpoint_digest(WEIGHTS / f"{name}.pt")  # the app serves it without torch
    onnx_logits = onnx_logits / meta["temperature"]
    onnx_probs = np.exp(onnx_logits - onnx_logits.max(1, keepdims=True))
    onnx_probs /= onnx_probs.sum(1, keepdims=True)
    assert np.allclose(onnx_probs, torch_probs, atol=1e-4)


def test_the_accurate_ensemble_is_served_from_its_shipped_int8_export(tmp_path, monkeypatch):
    """An installed copy has no FER-2013 faces to quantize with: the ensemble's int8 export is shipped, names its
    members' current digests in order, and is what the classifier runs."""
    from fercore.shipped import model_files
    from realtime import classifier

    monkeypatch.setattr(classifier, "ONNX_CACHE", tmp_path)  # nothing made on the way
    members = model_files("accurate")
    meta = read_metadata(WEIGHTS / "accurate.int8.onnx")
    assert export_digests(meta) == [checkpoint_digest(p) for p in members]
    assert classifier.onnx_for(members, "int8") == WEIGHTS / "accurate.int8.onnx"
    assert not list(tmp_path.iterdir())
    wide, ckpt = load_model(WEIGHTS / "wide.pt")
    assert ckpt["arch_args"]["width"] == 1.0 and len(ckpt["weights_sha256"]) == 64 and "training" not in ckpt


@pytest.mark.parametrize("name", ["fast.pt", "fast.onnx", "fast.int8.onnx"])
def test_a_shipped_model_with_flipped_bytes_is_refused(name, tmp_path):
    """5,000 bytes flipped in the middle of a shipped file: the digests it carries (weights_sha256 in a
    checkpoint, graph_sha256 in an export) refuse it, where it used to load and answer 'sad 100%'."""
    from models.checkpoint import read_checkpoint
    from models.errors import CheckpointError
    from models.onnx_runtime import open_session

    data = bytearray((WEIGHTS / name).read_bytes())
    middle = len(data) // 2
    data[middle:middle + 5000] = bytes(b ^ 0xFF for b in data[middle:middle + 5000])
    damaged = tmp_path / name
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        read_checkpoint(damaged) if name.endswith(".pt") else open_session(damaged)
    if name.endswith(".pt"):
        assert len(read_checkpoint(WEIGHTS / name)["weights_sha256"]) == 64
    else:
        assert "graph_sha256" in read_metadata(WEIGHTS / name)

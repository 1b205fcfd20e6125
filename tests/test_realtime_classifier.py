import cv2
import numpy as np
import pytest
import torch

from fercore.classes import EMOTIONS
from models.checkpoint import CheckpointError
from models.onnx_export import export_onnx
from realtime import classifier as classifier_module
from realtime.classifier import OnnxClassifier, TorchClassifier, load_classifier


@pytest.fixture(scope="module")
def faces(media):
    """Grayscale crops of different sizes, as the pipeline produces them."""
    image = cv2.imread(str(media / "photos" / "bbt4.jpg"), cv2.IMREAD_GRAYSCALE)
    return [image[60:160, 230:330], image[190:310, 455:575], image[0:48, 0:48], image[300:330, 10:70]]


def test_both_backends_give_the_same_probabilities(tiny_checkpoint, faces):
    torch_clf = load_classifier(tiny_checkpoint, backend="torch")
    onnx_clf = load_classifier(tiny_checkpoint)  # ONNX Runtime is the default
    assert isinstance(torch_clf, TorchClassifier) and isinstance(onnx_clf, OnnxClassifier)
    assert torch_clf.classes == onnx_clf.classes == list(EMOTIONS)
    a, b = torch_clf.predict(faces), onnx_clf.predict(faces)
    assert a.shape == b.shape == (len(faces), 7)
    assert np.allclose(a.sum(1), 1, atol=1e-5) and np.allclose(b.sum(1), 1, atol=1e-5)
    assert np.allclose(a, b, atol=1e-5)
    assert not np.allclose(a[0], a[1])  # the answer depends on the face
    assert onnx_clf.predict([]).shape == torch_clf.predict([]).shape == (0, 7)


def test_all_faces_of_a_frame_go_through_the_model_as_one_batch_in_inference_mode(tiny_checkpoint, faces):
    clf = load_classifier(tiny_checkpoint, backend="torch")
    calls = []
    forward = clf.model.forward

    def spy(x):
        calls.append((tuple(x.shape), torch.is_inference_mode_enabled()))
        return forward(x)

    clf.model.forward = spy
    clf.predict(faces)
    assert calls == [((len(faces), 1, 48, 48), True)]


def test_an_exported_onnx_file_loads_with_its_own_description(tiny_checkpoint, faces, tmp_path):
    onnx_path = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx")
    clf = load_classifier(onnx_path)
    assert clf.classes == list(EMOTIONS) and clf.preprocessing.size == 48
    assert np.allclose(clf.predict(faces), load_classifier(tiny_checkpoint, backend="torch").predict(faces),
                       atol=1e-5)
    with pytest.raises(CheckpointError, match="--backend onnx"):
        load_classifier(onnx_path, backend="torch")


def test_missing_default_weights_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(classifier_module, "DEFAULT_CHECKPOINT", tmp_path / "weights" / "default.pt")
    with pytest.raises(CheckpointError, match=r"default emotion model .*default\.pt is missing.*--checkpoint"):
        load_classifier()


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_missing_and_foreign_checkpoints_fail_clearly(tmp_path, backend):
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(tmp_path / "nope.pt", backend=backend)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_classifier(foreign, backend=backend)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_classifier(garbage, backend=backend)


def test_a_broken_onnx_file_fails_clearly(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    with pytest.raises(CheckpointError, match="bad.onnx"):
        load_classifier(bad)
    with pytest.raises(ValueError, match="unknown backend"):
        load_classifier(bad, backend="tensorrt")

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
    onnx_clf = load_classifier(tiny_checkpoint, precision="fp32")  # ONNX Runtime is the default backend
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
    from fercore import shipped

    monkeypatch.setattr(shipped, "WEIGHTS", tmp_path / "weights")
    with pytest.raises(CheckpointError, match=r"shipped emotion model .*default\.pt is missing.*--checkpoint"):
        load_classifier()
    with pytest.raises(CheckpointError, match=r"shipped emotion model .*default\.pt is missing"):
        load_classifier("accurate")


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


def test_onnx_sessions_never_spin_and_take_the_thread_count(tiny_checkpoint):
    from realtime.commands.options import settings_from_args
    from realtime.commands.webcam import get_parser
    from realtime.settings import build_pipeline

    clf = load_classifier(tiny_checkpoint, threads=3)
    options = clf.session.get_session_options()
    assert options.intra_op_num_threads == 3
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    args = get_parser().parse_args(["--checkpoint", str(tiny_checkpoint), "--threads", "1", "--no-display"])
    with build_pipeline(settings_from_args(args), "camera") as pipe:  # the option reaches the session
        assert pipe.classifier.session.get_session_options().intra_op_num_threads == 1


@pytest.mark.slow
def test_a_checkpoint_runs_on_onnx_runtime_from_a_matching_export_without_torch(tiny_checkpoint, tmp_path):
    import shutil
    import subprocess
    import sys

    from fercore.paths import ROOT

    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, ckpt)
    export_onnx(ckpt)  # model.onnx beside it, recording the checkpoint's digest
    code = ("import sys; from realtime.classifier import load_classifier; "
            f"c = load_classifier({str(ckpt)!r}); print(c.session is not None, 'torch' in sys.modules)")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    assert run.stdout.split() == ["True", "False"], run.stderr


def test_a_changed_checkpoint_is_never_served_from_its_stale_export(tiny_checkpoint, tmp_path, monkeypatch, faces):
    import shutil

    from fercore.classes import EMOTIONS as classes
    from models.checkpoint import atomic_save, load_model, make_checkpoint

    monkeypatch.setattr(classifier_module, "ONNX_CACHE", tmp_path / "cache")
    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, ckpt)
    export_onnx(ckpt)
    before = load_classifier(ckpt, precision="fp32").predict(faces)
    model, _ = load_model(ckpt)
    with torch.no_grad():
        model.classifier[-1].bias += torch.arange(7.0)  # a retrained model, saved over the old file
    atomic_save(make_checkpoint(model, classes), ckpt)
    after = load_classifier(ckpt, precision="fp32")
    assert not np.allclose(before, after.predict(faces), atol=1e-3)
    assert np.allclose(after.predict(faces), load_classifier(ckpt, backend="torch").predict(faces), atol=1e-5)
    assert list((tmp_path / "cache").glob("*.onnx"))  # the fresh export went to the cache, not over model.onnx


@pytest.fixture
def measured_checkpoint(tiny_checkpoint, tmp_path):
    """The tiny checkpoint with readability limits of its own stored in it, and those limits."""
    from fercore.readability import ReadabilityLimits
    from models.checkpoint import atomic_save, read_checkpoint

    own = ReadabilityLimits(max_yaw=70, max_roll=30, min_size=20, min_sharpness=50, min_confidence=0.6)
    ckpt = read_checkpoint(tiny_checkpoint)
    ckpt["readability"] = own.to_dict()
    atomic_save(ckpt, tmp_path / "measured.pt")
    return tmp_path / "measured.pt", own


@pytest.mark.parametrize("backend", [pytest.param("onnx", marks=pytest.mark.slow), "torch"])
def test_the_readability_limits_stored_with_a_model_travel_with_it(tiny_checkpoint, measured_checkpoint, tmp_path,
                                                                    monkeypatch, backend):
    from fercore.readability import ReadabilityLimits

    monkeypatch.setattr(classifier_module, "ONNX_CACHE", tmp_path / "cache")
    measured, own = measured_checkpoint
    assert load_classifier(measured, backend=backend).limits == own
    assert load_classifier(tiny_checkpoint, backend=backend).limits == ReadabilityLimits()  # none stored: defaults
    # an ensemble has not been measured: it takes its first member's
    assert load_classifier([measured, tiny_checkpoint], backend=backend).limits == own
    assert load_classifier([tiny_checkpoint, measured], backend=backend).limits == ReadabilityLimits()
    if backend == "onnx":
        assert load_classifier(export_onnx(measured, tmp_path / "measured.onnx")).limits == own


def test_each_readability_option_overrides_only_its_own_limit(measured_checkpoint):
    import dataclasses

    from realtime.commands import options
    from realtime.commands.webcam import get_parser
    from realtime.pipeline import Pipeline
    from realtime.settings import build_pipeline
    from realtime.tracking import Tracker

    def pipeline(argv: list[str]) -> Pipeline:
        return build_pipeline(options.settings_from_args(get_parser().parse_args(argv)), "camera")

    measured, own = measured_checkpoint
    with pipeline(["--checkpoint", str(measured), "--no-display", "--min-face", "5", "--max-yaw", "60"]) as pipe:
        assert pipe.limits == dataclasses.replace(own, min_size=5.0, max_yaw=60.0)
        assert Pipeline(pipe.detector, pipe.classifier, Tracker()).limits == own  # the default: the model's own
    with pipeline(["--checkpoint", str(measured), "--no-display", "--label-all", "--min-face", "5"]) as pipe:
        assert pipe.limits is None

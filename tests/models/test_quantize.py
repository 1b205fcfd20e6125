"""int8 exports (models.quantize): close to their fp32 model, self-describing like it, and served by the ONNX
backend by default only when they were made from exactly the checkpoint asked for."""
import shutil

import cv2
import numpy as np
import onnx
import pytest
import torch

from fercore.classes import EMOTIONS
from models import quantize
from models.checkpoint import CheckpointError, atomic_save, load_model, make_checkpoint
from models.onnx_export import export_onnx
from models.onnx_runtime import read_metadata
from realtime import classifier as classifier_module
from realtime.classifier import load_classifier, onnx_for


def random_faces(n: int, seed: int) -> list[np.ndarray]:
    """Smooth random grayscale faces of 48 pixels (blurred noise, so neighbouring pixels correlate as in a face),
    each at its own brightness, so that even an untrained model's answer depends on the face."""
    rng = np.random.default_rng(seed)
    return [cv2.GaussianBlur(rng.integers(0, 64, (48, 48), dtype=np.uint8), (7, 7), 2) + np.uint8(rng.integers(0, 190))
            for _ in range(n)]


@pytest.fixture
def face_reading_checkpoint(tmp_path):
    """A tiny untrained CNN whose BatchNorm statistics are those of random_faces: its probabilities then move
    with the face (by about 0.02 between faces), so an int8 model that misreads its input shows."""
    from models import build_model
    from models.preprocessing import Preprocessing, faces_to_input

    torch.manual_seed(0)
    model = build_model("cnn", width=0.125).train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # the plain mean over the batches below
    with torch.no_grad():
        for seed in range(3):
            model(torch.from_numpy(faces_to_input(random_faces(32, 100 + seed), Preprocessing())))
    path = tmp_path / "reader.pt"
    atomic_save(make_checkpoint(model.eval(), EMOTIONS), path)
    return path


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path, monkeypatch):
    """The tiny checkpoint copied into its own folder; the app's cache and calibration faces made small and local."""
    monkeypatch.setattr(classifier_module, "ONNX_CACHE", tmp_path / "cache")
    monkeypatch.setattr(quantize, "calibration_faces", lambda *a, **k: random_faces(64, 0))
    path = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, path)
    return path


def retrained(path):
    """Change the checkpoint at ``path`` as a retrained model saved over it would."""
    model, _ = load_model(path)
    with torch.no_grad():
        model.classifier[-1].bias += torch.arange(7.0)
    atomic_save(make_checkpoint(model, EMOTIONS), path)


def test_int8_probabilities_stay_close_to_fp32_and_the_metadata_travels(face_reading_checkpoint):
    ckpt = face_reading_checkpoint
    int8 = quantize.quantize_checkpoint(ckpt, faces=random_faces(64, 0))
    assert int8 == ckpt.parent / "reader.int8.onnx"
    fp32 = export_onnx(ckpt)
    faces = random_faces(32, 1)  # not the calibration faces
    a = load_classifier(fp32).predict(faces)
    b = load_classifier(int8).predict(faces)
    assert np.abs(a - a.mean(0)).max() > 0.01  # the answers differ from face to face ...
    assert np.abs(a - b).max() < 0.01  # ... and int8 keeps them (0.004 here; calibrated on raw pixels 0.27)
    meta, plain = read_metadata(int8), read_metadata(fp32)
    assert meta.pop("precision") == "int8" and meta.pop("quantization")["calibration_faces"] == 64
    for m in (meta, plain):  # each file's own graph digest (models.onnx_runtime.sealed_model)
        assert len(m.pop("graph_sha256")) == 64 and m.pop("graph_bytes") > 0
    assert meta == plain  # the checkpoint's digest, classes, preprocessing, temperature: all as the fp32 export's
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_the_classifier_serves_int8_by_default_and_fp32_when_asked(ckpt):
    quantize.quantize_checkpoint(ckpt, faces=random_faces(64, 0))
    export_onnx(ckpt)
    assert onnx_for(ckpt, "int8") == ckpt.parent / "model.int8.onnx"  # the one beside it, not a cached copy
    assert load_classifier(ckpt).precision == "int8"
    assert load_classifier(ckpt, precision="fp32").precision == "fp32"
    assert load_classifier(ckpt, backend="torch").precision == "fp32"
    with pytest.raises(ValueError, match="ONNX Runtime only"):
        load_classifier(ckpt, backend="torch", precision="int8")
    with pytest.raises(ValueError, match="unknown precision"):
        load_classifier(ckpt, precision="int4")


def test_a_stale_or_foreign_int8_export_is_never_served(ckpt, tmp_path):
    beside = quantize.quantize_checkpoint(ckpt, faces=random_faces(64, 0))
    retrained(ckpt)  # the int8 export beside it is now another checkpoint's
    served = onnx_for(ckpt, "int8")
    assert served != beside and served.parent == tmp_path / "cache"
    assert read_metadata(served)["precision"] == "int8"
    faces = random_faces(8, 2)
    want = load_classifier(ckpt, backend="torch").predict(faces)
    assert np.abs(load_classifier(ckpt).predict(faces) - want).max() < 0.03
    export_onnx(ckpt, beside)  # this checkpoint's export under the int8 name, but fp32
    assert onnx_for(ckpt, "int8") == served


def test_an_ensemble_runs_in_int8_from_the_cache(ckpt, tmp_path):
    other = tmp_path / "other.pt"
    shutil.copy(ckpt, other)
    retrained(other)
    faces = random_faces(8, 3)
    clf = load_classifier([ckpt, other])
    assert clf.precision == "int8" and len(list((tmp_path / "cache").glob("ensemble-*.int8.onnx"))) == 1
    want = load_classifier([ckpt, other], precision="fp32").predict(faces)
    assert np.abs(clf.predict(faces) - want).max() < 0.03


def test_a_shipped_ensemble_runs_its_shipped_int8_export(ckpt, tmp_path, monkeypatch):
    from fercore import shipped

    other = tmp_path / "other.pt"
    shutil.copy(ckpt, other)
    retrained(other)
    monkeypatch.setattr(shipped, "WEIGHTS", tmp_path)
    monkeypatch.setitem(shipped.MODELS, "pair", shipped.ShippedModel((ckpt.name, other.name), "two", "pair"))
    export = quantize.quantize_checkpoint([ckpt, other], tmp_path / "pair.int8.onnx", faces=random_faces(64, 0))
    assert onnx_for([ckpt, other], "int8") == export
    assert not list((tmp_path / "cache").glob("ensemble-*"))  # none made on first use
    retrained(other)  # a member changed: the shipped export is stale and not served
    assert onnx_for([ckpt, other], "int8").parent == tmp_path / "cache"


def test_without_calibration_faces_the_model_runs_in_fp32_with_a_warning(ckpt, monkeypatch):
    def missing(*args, **kwargs):
        raise quantize.CalibrationError("no faces here")

    monkeypatch.setattr(quantize, "calibration_faces", missing)
    with pytest.warns(RuntimeWarning, match="no faces here"):
        assert load_classifier(ckpt).precision == "fp32"


def test_calibration_faces_are_a_fixed_draw(tmp_path):
    for i in range(12):
        folder = tmp_path / "fer" / "train" / EMOTIONS[i % 7]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((48, 48), i * 20, np.uint8))
    a = quantize.calibration_faces(tmp_path / "fer", 5, seed=0)
    assert len(a) == 5 and all(face.shape == (48, 48) for face in a)
    assert [f[0, 0] for f in a] == [f[0, 0] for f in quantize.calibration_faces(tmp_path / "fer", 5, seed=0)]
    assert [f[0, 0] for f in a] != [f[0, 0] for f in quantize.calibration_faces(tmp_path / "fer", 5, seed=1)]
    with pytest.raises(quantize.CalibrationError, match="needs 13 FER-2013 training faces"):
        quantize.calibration_faces(tmp_path / "fer", 13)


def test_the_command_writes_the_int8_export_beside_the_checkpoint(tiny_checkpoint, tmp_path, capsys):
    for i in range(8):
        folder = tmp_path / "fer" / "train" / EMOTIONS[i % 7]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:03d}.png"), random_faces(1, i)[0])
    path = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, path)
    assert quantize.main([str(path), "--data", str(tmp_path / "fer"), "--faces", "8"]) == 0
    assert read_metadata(tmp_path / "model.int8.onnx")["precision"] == "int8"
    assert quantize.main([str(path), "--data", str(tmp_path / "nowhere")]) == 1
    assert "needs 3072 FER-2013 training faces" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="already quantized"):
        quantize.quantize_onnx(tmp_path / "model.int8.onnx", tmp_path / "again.onnx", random_faces(4, 0))


def test_rewriting_a_checkpoint_re_quantizes_the_int8_export_beside_it(ckpt):
    from models.onnx_export import refresh_export
    from models.onnx_runtime import checkpoint_digest

    int8 = quantize.quantize_checkpoint(ckpt, faces=random_faces(64, 0))
    retrained(ckpt)  # as training.calibrate or storing readability limits rewrite it
    assert refresh_export(ckpt) is None  # no fp32 export beside it: none made
    assert read_metadata(int8)["checkpoint_sha256"] == checkpoint_digest(ckpt)
    assert onnx_for(ckpt, "int8") == int8


@pytest.mark.slow
def test_exports_are_compared_side_by_side(ckpt, tiny_fer_csv, tmp_path, capsys):
    from training.compare_exports import main as compare_main

    fp32 = export_onnx(ckpt)
    int8 = quantize.quantize_checkpoint(ckpt, faces=random_faces(64, 0))
    assert compare_main([str(fp32), str(int8), "--data", str(tiny_fer_csv), "--cache-dir", "none",
                         "--rounds", "1"]) == 0
    head, first, second = capsys.readouterr().out.splitlines()
    assert "corrupted" in head and "ms/face x4" in head
    assert first.split()[:2] == [str(fp32), "fp32"] and second.split()[:2] == [str(int8), "int8"]
    assert all(field.endswith("%") for field in second.split()[2:4])


@pytest.mark.parametrize("name", ["default", "fast"])
def test_the_shipped_int8_exports_are_of_the_shipped_checkpoints(name):
    from fercore.paths import WEIGHTS
    from models.onnx_runtime import checkpoint_digest

    meta = read_metadata(WEIGHTS / f"{name}.int8.onnx")
    assert meta["precision"] == "int8" and meta["quantization"]["calibration"] == quantize.DEFAULT_METHOD
    assert meta["checkpoint_sha256"] == checkpoint_digest(WEIGHTS / f"{name}.pt")
    assert meta["quantization"]["calibration_faces"] == quantize.CALIBRATION_FACES


def test_quantizing_on_first_use_prints_no_advice(ckpt, capfd):
    """ONNX Runtime's quantizer logs 'Please consider ... pre-processing' on the root logger: a program that
    quantizes a model on first use must not pass that on to its user."""
    import logging

    handler = logging.StreamHandler()  # as a program whose logging reaches stderr
    logging.getLogger().addHandler(handler)
    try:
        load_classifier(ckpt)
    finally:
        logging.getLogger().removeHandler(handler)
    assert "pre-processing" not in capfd.readouterr().err


def test_a_node_to_keep_in_fp32_must_be_in_the_model(tiny_checkpoint, tmp_path):
    """--exclude with a name the graph lacks (a typo) was ignored: the export came out with every node in int8
    and said nothing."""
    from fercore.cli import CommandError

    fp32 = export_onnx(tiny_checkpoint, tmp_path / "model.onnx")
    conv = next(n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv")
    with pytest.raises(CommandError, match=r"no node named '/no/such/Gemm' in the model.*" + conv):
        quantize.quantize_onnx(fp32, tmp_path / "x.int8.onnx", random_faces(4, 0), exclude=[conv, "/no/such/Gemm"])
    assert not (tmp_path / "x.int8.onnx").exists()
    kept = quantize.quantize_onnx(fp32, tmp_path / "y.int8.onnx", random_faces(4, 0), exclude=[conv])
    assert read_metadata(kept)["quantization"]["excluded_nodes"] == [conv]

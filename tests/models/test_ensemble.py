"""Ensembles: several checkpoints whose calibrated probabilities are averaged, everywhere a
checkpoint is taken (models.ensemble, the realtime backends and command line, the Python API, training.evaluate,
models.onnx_export)."""
import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from fercore.classes import EMOTIONS
from models import build_model
from models.checkpoint import CheckpointError, atomic_save, load_model, make_checkpoint
from models.ensemble import Ensemble, load_ensemble
from models.inference import predict
from models.onnx_export import main as export_main
from models.onnx_runtime import checkpoint_digest, read_metadata
from realtime import classifier as classifier_module

from realtime.commands.annotate import main as annotate_main
from realtime.classifier import OnnxClassifier, TorchClassifier, load_classifier
from training.evaluate import main as evaluate_main


def member(path, seed, temperature=1.0, classes=EMOTIONS, margin=0.15, bias=0.0):
    """An untrained eighth-width CNN checkpoint whose outputs depend on its input (BatchNorm statistics from random
    faces), with a calibration ``temperature``."""
    torch.manual_seed(seed)
    model = build_model("cnn", width=0.125).train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.rand(32, 1, 48, 48))
        model.classifier[-1].bias += bias * torch.arange(7.0)
    model.eval()
    model.temperature = temperature
    model.preprocessing = dataclasses.replace(model.preprocessing, margin=margin)
    atomic_save(make_checkpoint(model, classes), path)
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Three members of different weights and temperatures (0.5, 1, 3)."""
    folder = tmp_path_factory.mktemp("members")
    return [member(folder / f"m{i}.pt", seed=i, temperature=t) for i, t in enumerate((0.5, 1.0, 3.0))]


@pytest.fixture(scope="module")
def faces(sample_media):
    """Grayscale crops of different sizes, as the pipeline produces them."""
    image = cv2.imread(str(sample_media / "photos" / "grace_hopper.jpg"), cv2.IMREAD_GRAYSCALE)
    return [image[40:240, 60:260], image[100:160, 100:160], image[0:48, 0:48], image[200:300, 10:70]]


def mean_of_members(paths, faces):
    """The members' calibrated probabilities, averaged: each run alone by PyTorch."""
    return np.mean([load_classifier(p, backend="torch").predict(faces) for p in paths], axis=0)


def test_the_ensembles_probabilities_are_the_mean_of_its_members(members, faces, tmp_path, monkeypatch):
    monkeypatch.setattr(classifier_module, "ONNX_CACHE", tmp_path / "cache")
    want = mean_of_members(members, faces)
    singles = [load_classifier(p, backend="torch").predict(faces) for p in members]
    assert not np.allclose(singles[0], singles[1], atol=1e-3)  # the members differ, so the mean says something
    # PyTorch: the Ensemble module, temperature 1, through the app's classifier and models.inference.predict
    torch_clf = load_classifier(members, backend="torch")
    assert isinstance(torch_clf, TorchClassifier) and isinstance(torch_clf.model, Ensemble)
    assert torch_clf.temperature == 1.0 and torch_clf.classes == list(EMOTIONS)
    assert np.allclose(torch_clf.predict(faces), want, atol=1e-6)
    batch = np.stack([cv2.resize(f, (48, 48)) for f in faces])
    for tta in ("none", "flip", "tencrop"):
        alone = [predict(load_model(p)[0], batch, torch_clf.preprocessing, tta=tta) for p in members]
        assert np.allclose(predict(torch_clf.model, batch, torch_clf.preprocessing, tta=tta), np.mean(alone, 0),
                           atol=1e-6)
    # ONNX Runtime: one graph exported into the cache, keyed by the members' digests, and reused
    onnx_clf = load_classifier(members, precision="fp32")
    assert isinstance(onnx_clf, OnnxClassifier)
    assert np.allclose(onnx_clf.predict(faces), want, atol=1e-5)
    (cached,) = (tmp_path / "cache").glob("ensemble-*.onnx")
    meta = read_metadata(cached)
    assert [m["sha256"] for m in meta["members"]] == [checkpoint_digest(p) for p in members]
    assert [m["checkpoint"] for m in meta["members"]] == [str(p) for p in members]
    assert [m["temperature"] for m in meta["members"]] == [0.5, 1.0, 3.0] and meta["temperature"] == 1.0
    stamp = cached.stat().st_mtime_ns
    assert np.allclose(load_classifier(members, precision="fp32").predict(faces), want, atol=1e-5)
    assert cached.stat().st_mtime_ns == stamp and len(list((tmp_path / "cache").iterdir())) == 1  # exported once
    # One path is the model itself, not an ensemble of one
    assert not isinstance(load_ensemble(members[:1])[0], Ensemble)


def test_a_changed_member_is_never_served_from_a_stale_export(members, faces, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(classifier_module, "ONNX_CACHE", tmp_path / "cache")
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    shutil.copy(members[0], a)
    shutil.copy(members[2], b)
    before = load_classifier([a, b], precision="fp32").predict(faces)
    member(b, seed=7, temperature=2.0, bias=1.0)  # b retrained, saved over the old file
    after = load_classifier([a, b], precision="fp32").predict(faces)
    assert not np.allclose(before, after, atol=1e-3)
    assert np.allclose(after, mean_of_members([a, b], faces), atol=1e-5)
    assert len(list((tmp_path / "cache").glob("ensemble-*.onnx"))) == 2


def test_an_ensemble_exports_to_one_onnx_file(members, faces, tmp_path, capsys):
    out = tmp_path / "ensemble.onnx"
    assert export_main([*map(str, members[:2]), "-o", str(out)]) == 0
    clf = load_classifier(out)
    assert np.allclose(clf.predict(faces), mean_of_members(members[:2], faces), atol=1e-5)
    assert export_main([*map(str, members[:2])]) == 1  # several checkpoints have no default output
    assert "needs an output file" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_members_that_disagree_are_refused_naming_the_file(members, tmp_path, backend, monkeypatch):
    monkeypatch.setattr(classifier_module, "ONNX_CACHE", tmp_path / "cache")
    swapped = member(tmp_path / "swapped.pt", seed=5, classes=[*EMOTIONS[1:], EMOTIONS[0]])  # same names, reordered
    with pytest.raises(CheckpointError, match=r"swapped\.pt predicts the classes .*same classes in the same order"):
        load_classifier([members[0], swapped], backend=backend)
    wider = member(tmp_path / "wider.pt", seed=5, margin=0.3)
    with pytest.raises(CheckpointError, match=r"wider\.pt takes its input as .*'margin': 0\.3.*share their "
                                              r"preprocessing"):
        load_classifier([members[0], members[1], wider], backend=backend)
    assert not list((tmp_path / "cache").glob("*.onnx"))  # nothing exported for a refused ensemble
    onnx = tmp_path / "m.onnx"
    export_main([str(members[0]), "-o", str(onnx)])
    with pytest.raises(CheckpointError, match=r"m\.onnx is an ONNX model: an ensemble is made of \.pt checkpoints"):
        load_classifier([members[1], onnx], backend=backend)
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*missing\.pt"):
        load_classifier([members[0], tmp_path / "missing.pt"], backend=backend)


@pytest.mark.slow
def test_evaluate_reports_the_ensemble_beside_its_members(members, tiny_fer_csv, tmp_path, capsys):
    out = tmp_path / "eval"
    a, b = members[0], members[2]
    assert evaluate_main([str(a), str(b), "--data", str(tiny_fer_csv), "--split", "val", "--tta", "none", "flip",
                          "--out", str(out), "--cache-dir", "none"]) == 0
    printed = capsys.readouterr().out
    head, *table = printed.split("\n\n")[0].splitlines()
    assert head.startswith("ensemble of 2 checkpoints")
    named, table = table[:2], [head, *table[2:]]  # each member named (path, architecture, digest), then the table
    assert [line.split()[0] for line in named] == [str(a), str(b)] and all("sha256" in line for line in named)
    assert "none" in table[1] and "flip" in table[1]
    assert [row.split()[0] for row in table[3:]] == [str(a), str(b), "ensemble"]
    assert all(len(row.split()) == 5 for row in table[3:])  # accuracy and macro-F1 per mode
    result = json.loads((out / "metrics_val.json").read_text())
    assert result["checkpoint"] == [str(a), str(b)] and result["arch"] == "ensemble"
    assert [m["checkpoint"] for m in result["members"]] == [str(a), str(b)]
    assert [m["temperature"] for m in result["members"]] == [0.5, 3.0]
    for m in result["members"]:
        assert set(m["results"]) == {"none", "flip"}
    # Each figure is what that model (or the ensemble model) really predicts on these images
    from training.data import read_split

    images, labels = read_split(tiny_fer_csv, "val", progress=False)
    ensemble, _ = load_ensemble([a, b])
    for mode in ("none", "flip"):
        for path, m in zip((a, b), result["members"]):
            model, _ = load_model(path)
            acc = (predict(model, images, model.preprocessing, tta=mode).argmax(1) == labels).mean()
            assert np.isclose(m["results"][mode]["accuracy"], acc)
            assert f"{m['results'][mode]['accuracy']:.4f}" in table[3 + result["members"].index(m)]
        acc = (predict(ensemble, images, ensemble.preprocessing, tta=mode).argmax(1) == labels).mean()
        assert np.isclose(result["results"][mode]["accuracy"], acc)
        assert f"{result['results'][mode]['macro_f1']:.4f}" in table[-1]
    assert (out / "confusion_val_none.png").is_file()


def test_evaluate_refuses_members_that_disagree(members, tiny_fer_csv, tmp_path, capsys):
    other = member(tmp_path / "other.pt", seed=3, margin=0.0)
    assert evaluate_main([str(members[0]), str(other), "--data", str(tiny_fer_csv), "--cache-dir", "none",
                          "--out", str(tmp_path / "eval")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {other} takes its input as") and err.count("\n") == 1


def test_the_command_line_and_the_api_take_several_checkpoints(members, sample_media, tmp_path, check_document,
                                                               monkeypatch):
    monkeypatch.setattr(classifier_module, "ONNX_CACHE", tmp_path / "cache")
    photo = sample_media / "photos" / "grace_hopper.jpg"

    def annotate(*checkpoints):
        js = tmp_path / f"{len(checkpoints)}-{checkpoints[0].stem}.json"
        args = [str(photo), "-o", str(js.with_suffix(".jpg")), "--json", str(js), "--label-all", "--backend", "torch",
                "--checkpoint", *map(str, checkpoints), "--no-progress"]
        assert annotate_main(args) == 0
        return json.loads(js.read_text())

    doc = annotate(members[0], members[2])
    check_document(doc, "images")
    assert doc["settings"]["checkpoint"] == [str(members[0]), str(members[2])]
    (face,) = doc["frames"][0]["faces"]
    alone = [annotate(p)["frames"][0]["faces"][0] for p in (members[0], members[2])]
    assert [f["box"] for f in alone] == [face["box"]] * 2
    assert annotate(members[0])["settings"]["checkpoint"] == str(members[0])  # one model: a path, as before
    for c in EMOTIONS:
        assert face["probabilities"][c] == pytest.approx((alone[0]["probabilities"][c]
                                                          + alone[1]["probabilities"][c]) / 2, abs=2e-4)
    # The Python API's checkpoint argument takes the list too (on ONNX Runtime, its default backend)
    from realtime import EmotionRecognizer

    with EmotionRecognizer([members[0], members[2]], precision="fp32") as fer:
        (api_face,) = fer.recognize(photo)
    assert list(api_face.box) == face["box"]
    assert all(api_face.probabilities[c] == pytest.approx(face["probabilities"][c], abs=2e-4) for c in EMOTIONS)

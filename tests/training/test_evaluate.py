import json

import numpy as np
import torch

from fercore.classes import EMOTIONS
from models.checkpoint import load_model
from training.data import read_split
from training.evaluate import main, predict
from fercore.metrics import classification_report


def test_evaluate_command_writes_metrics_and_confusion_matrices(tiny_fer_csv, tiny_checkpoint, tmp_path, capsys):
    model, _ = load_model(tiny_checkpoint)
    out = tmp_path / "eval"
    code = main([str(tiny_checkpoint), "--data", str(tiny_fer_csv), "--split", "val",
                 "--tta", "none", "flip", "tencrop", "--out", str(out), "--cache-dir", "none"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "macro-F1" in printed and "disgust" in printed
    result = json.loads((out / "metrics_val.json").read_text())
    # the report names the model (path, architecture, digest) and every file it wrote, no placeholder
    assert printed.startswith(f"{tiny_checkpoint} (cnn, width 0.125") and result["sha256"][:12] in printed
    assert "<tta>" not in printed and f"{out}/confusion_val_tencrop.png" in printed
    assert set(result["results"]) == {"none", "flip", "tencrop"}
    for mode in ("none", "flip", "tencrop"):
        assert (out / f"confusion_val_{mode}.png").stat().st_size > 1000
    # The single-crop figures are what the model really predicts on these images.
    images, labels = read_split(tiny_fer_csv, "val", progress=False)
    with torch.inference_mode():
        preds = model(model.preprocessing.normalize(torch.from_numpy(images))).argmax(1).numpy()
    single = result["results"]["none"]
    assert single["n"] == 64
    assert np.isclose(single["accuracy"], (preds == labels).mean())
    assert np.array(single["confusion_matrix"]).sum() == 64
    assert set(single["per_class"]) == set(EMOTIONS)


def test_flip_tta_averages_the_mirrored_view(tiny_checkpoint):
    model, _ = load_model(tiny_checkpoint)
    faces = np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    single = predict(model, faces, model.preprocessing)
    mirrored = predict(model, faces[:, :, ::-1].copy(), model.preprocessing)
    assert np.allclose(predict(model, faces, model.preprocessing, tta="flip"), (single + mirrored) / 2, atol=1e-6)
    assert np.allclose(predict(model, faces, model.preprocessing, tta="tencrop").sum(1), 1, atol=1e-5)


def test_evaluate_command_errors_are_clear(tiny_fer_csv, tiny_checkpoint, tmp_path, capsys):
    """A missing file is a user error (exit status 1, one line); see also tests/test_cli_convention.py."""
    assert main([str(tmp_path / "missing.pt"), "--data", str(tiny_fer_csv)]) == 1
    assert capsys.readouterr().err == f"error: checkpoint not found: {tmp_path / 'missing.pt'}\n"
    assert main([str(tiny_checkpoint), "--data", str(tmp_path / "nowhere.csv"), "--cache-dir", "none"]) == 1
    assert capsys.readouterr().err.startswith(f"error: data not found: {tmp_path / 'nowhere.csv'}")
    assert main([str(tiny_checkpoint), "--data", str(tiny_fer_csv), "--batch-size", "0"]) == 2
    assert "argument --batch-size" in capsys.readouterr().err


def test_classification_report_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 0, 2])
    r = classification_report(labels, preds, ["a", "b", "c"])
    assert r["accuracy"] == 4 / 6
    assert r["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert np.isclose(r["per_class"]["b"]["precision"], 2 / 3) and np.isclose(r["per_class"]["b"]["recall"], 2 / 3)
    assert r["confusion_matrix"] == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    assert np.isclose(r["macro_f1"], (0.5 + 2 / 3 + 1) / 3)


class Brightness(torch.nn.Module):
    """Answers by mean brightness (class k for the k-th seventh of the range), so corruptions change answers."""

    temperature = 1.0

    def forward(self, x):
        centres = torch.linspace(-1, 1, len(EMOTIONS))
        return -100 * (x.mean(dim=(1, 2, 3))[:, None] - centres) ** 2


def test_corrupted_report_scores_every_copy_and_the_share_of_each_answer(tiny_fer_csv, tiny_checkpoint):
    from models.corruptions import KINDS, LEVELS, corrupted_copies
    from training.evaluate import corrupted_accuracies, evaluate, format_report

    model, _ = load_model(tiny_checkpoint)
    images, labels = read_split(tiny_fer_csv, "val", progress=False)
    images = (images * np.linspace(0.2, 1.0, len(images))[:, None, None]).astype(np.uint8)  # all brightnesses
    [corrupted] = corrupted_accuracies([Brightness()], images, labels, model.preprocessing)
    assert set(corrupted["accuracy"]) == {f"{kind}-{level}" for kind in KINDS for level in LEVELS}
    assert np.isclose(corrupted["mean"], np.mean(list(corrupted["accuracy"].values())))
    answers = [predict(Brightness(), faces, model.preprocessing).argmax(1)
               for _, _, faces in corrupted_copies(images, 0)]
    assert len({tuple(np.bincount(a, minlength=len(EMOTIONS))) for a in answers}) > 1  # copies differ
    counts = sum(np.bincount(a, minlength=len(EMOTIONS)) for a in answers)
    assert np.allclose(corrupted["predicted"], counts / counts.sum())
    assert np.isclose(corrupted["accuracy"][f"{KINDS[0]}-{next(iter(LEVELS))}"], (answers[0] == labels).mean())
    result = evaluate(tiny_checkpoint, tiny_fer_csv, "val", None, ["none"], None, corrupted=True)
    assert "share of each class among the answers on the corrupted copies" in format_report(result)


def test_by_default_each_model_and_each_ensemble_has_its_own_eval_folder(tiny_fer_csv, tiny_checkpoint, tmp_path):
    import shutil

    a, b = shutil.copy(tiny_checkpoint, tmp_path / "a.pt"), shutil.copy(tiny_checkpoint, tmp_path / "b.pt")
    common = ["--data", str(tiny_fer_csv), "--tta", "none", "--cache-dir", "none"]
    assert main([str(a), *common]) == 0 and main([str(b), *common]) == 0 and main([str(a), str(b), *common]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("eval/*/metrics_val.json"))
    assert written == ["eval/a+b/metrics_val.json", "eval/a/metrics_val.json", "eval/b/metrics_val.json"]


def test_evaluate_reports_calibration_before_and_after_with_a_reliability_diagram(tiny_fer_csv, tiny_checkpoint,
                                                                                   tmp_path, capsys):
    """ECE and NLL at temperature 1 and at the stored temperature, for a model and for an ensemble (whose
    'after' is the mean of its members' calibrated probabilities), as fercore.calibration defines them."""
    from fercore.calibration import nll, reliability, softmax
    from models.checkpoint import atomic_save, read_checkpoint

    warm = read_checkpoint(tiny_checkpoint)
    warm["temperature"] = 2.0
    atomic_save(warm, tmp_path / "warm.pt")
    images, labels = read_split(tiny_fer_csv, "val", progress=False)
    model, _ = load_model(tiny_checkpoint)
    with torch.inference_mode():
        logits = model(model.preprocessing.normalize(torch.from_numpy(images))).double().numpy()
    common = ["--data", str(tiny_fer_csv), "--split", "val", "--cache-dir", "none", "--tta", "flip"]

    assert main([str(tmp_path / "warm.pt"), *common, "--out", str(tmp_path / "one")]) == 0
    cal = json.loads((tmp_path / "one" / "metrics_val.json").read_text())["calibration"]
    assert np.isclose(cal["ece_before"], reliability(softmax(logits), labels)["ece"], atol=1e-6)
    assert np.isclose(cal["ece_after"], reliability(softmax(logits, 2.0), labels)["ece"], atol=1e-6)
    assert np.isclose(cal["nll_before"], nll(logits, labels), atol=1e-5)
    assert np.isclose(cal["nll_after"], nll(logits, labels, 2.0), atol=1e-5)
    assert cal["ece_before"] != cal["ece_after"]
    assert (tmp_path / "one" / "reliability_val.png").stat().st_size > 1000
    assert "at temperature 1" in capsys.readouterr().out

    assert main([str(tiny_checkpoint), str(tmp_path / "warm.pt"), *common, "--out", str(tmp_path / "two")]) == 0
    result = json.loads((tmp_path / "two" / "metrics_val.json").read_text())
    mean = (softmax(logits) + softmax(logits, 2.0)) / 2
    assert np.isclose(result["calibration"]["ece_after"], reliability(mean, labels)["ece"], atol=1e-6)
    assert np.isclose(result["calibration"]["ece_before"], reliability(softmax(logits), labels)["ece"], atol=1e-6)
    assert np.allclose([m["calibration"]["ece_after"] for m in result["members"]], [cal["ece_before"], cal["ece_after"]])
    assert (tmp_path / "two" / "reliability_val.png").stat().st_size > 1000


def test_a_tta_mode_named_twice_is_evaluated_once(tiny_fer_csv, tiny_checkpoint, tmp_path):
    from models.checkpoint import atomic_save, read_checkpoint
    from training.evaluate import evaluate

    warm = read_checkpoint(tiny_checkpoint)
    warm["temperature"] = 2.0
    atomic_save(warm, tmp_path / "warm.pt")
    pair = [tiny_checkpoint, tmp_path / "warm.pt"]
    once = evaluate(pair, tiny_fer_csv, "val", None, ["none", "flip"], None)
    twice = evaluate(pair, tiny_fer_csv, "val", None, ["none", "flip", "none"], None)
    assert list(twice["results"]) == ["none", "flip"]
    assert [m["calibration"] for m in twice["members"]] == [m["calibration"] for m in once["members"]]

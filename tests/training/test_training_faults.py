"""Faults of the training commands' inputs and outputs: a model output never replaces an input, a file that is
not a model of its kind, nor its export beside it, and is checked before any work; class order is matched by
name wherever data labels meet a checkpoint."""
import numpy as np
import pytest
import torch

from fercore.classes import EMOTIONS
from models.checkpoint import atomic_save, read_checkpoint
from models.onnx_export import export_onnx, main as export_main
from training.average import main as average_main
from training.calibrate import main as calibrate_main
from training.evaluate import evaluate, main as evaluate_main


def _permuted(src, dst, order):
    """``src`` with its classes listed in ``order``: the last layer's rows and the names permuted together."""
    ckpt = read_checkpoint(src)
    last = [k for k, v in ckpt["model"].items() if v.shape[:1] == (len(EMOTIONS),)][-2:]  # weight and bias
    assert [k.rsplit(".", 1)[1] for k in last] == ["weight", "bias"]
    for key in last:
        ckpt["model"][key] = ckpt["model"][key][order].clone()
    ckpt["classes"] = [ckpt["classes"][i] for i in order]
    atomic_save(ckpt, dst)
    return dst


def _run(main, argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_model_outputs_are_checked_before_any_work_and_replace_nothing(tiny_checkpoint, tmp_path, capsys):
    photo, notes, foreign = tmp_path / "photo.jpg", tmp_path / "notes.txt", tmp_path / "other.pt"
    photo.write_bytes(b"\xff\xd8 a photo")
    notes.write_text("notes")
    torch.save({"weights": torch.zeros(3)}, foreign)
    export = export_onnx(tiny_checkpoint, tmp_path / "c.onnx")
    not_onnx = tmp_path / "n.onnx"
    not_onnx.write_text("notes named .onnx")
    a1 = tmp_path / "a1.pt"
    a1.write_bytes(tiny_checkpoint.read_bytes())
    link = tmp_path / "link.pt"
    link.symlink_to(a1)
    before = {p: p.read_bytes() for p in (photo, notes, foreign, export, not_onnx, a1)}
    no_data = ["--data", tmp_path / "no-data", "--cache-dir", "none"]  # refused before the data are read
    cases = [
        (calibrate_main, [tiny_checkpoint, "--out", photo, *no_data], "--out must be a .pt file"),
        (calibrate_main, [tiny_checkpoint, "--out", notes, *no_data], "--out must be a .pt file"),
        (calibrate_main, [tiny_checkpoint, "--out", export, *no_data], "--out must be a .pt file"),
        (calibrate_main, [tiny_checkpoint, "--out", foreign, *no_data], "exists and is not a checkpoint"),
        (calibrate_main, [tiny_checkpoint, "--out", tmp_path / "c2.pt", "--diagram", tmp_path / "d.txt", *no_data],
         "--diagram must be a .png file"),
        (calibrate_main, [tiny_checkpoint, "--out", tmp_path / "n.pt", *no_data], "is not an ONNX export"),
        (average_main, [a1, tiny_checkpoint, "--out", a1, *no_data], "is the checkpoint"),
        (average_main, [a1, tiny_checkpoint, "--out", link, *no_data], "is the checkpoint"),
        (average_main, [a1, tiny_checkpoint, "--out", photo, *no_data], "--out must be a .pt file"),
        (average_main, [a1, tiny_checkpoint, "--out", foreign, *no_data], "exists and is not a checkpoint"),
        (export_main, [tiny_checkpoint, "-o", not_onnx], "exists and is not an ONNX export"),
    ]
    for main, argv, message in cases:
        status, out, err = _run(main, argv, capsys)
        assert status == 1 and message in err and err.count("\n") == 1 and "wrote" not in out, (argv, err)
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / "c2.pt").exists() and not (tmp_path / "eval").exists()


def _agreeing_csv(checkpoint, path, n=140, agree=0.7):
    """A fer2013.csv whose val labels are ``checkpoint``'s answers for ``agree`` of the faces (the rest at random):
    a model that is right that often, whose fitted temperature means something."""
    from models.checkpoint import load_model
    from models.inference import predict

    rng = np.random.default_rng(3)
    faces = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    model, _ = load_model(checkpoint)
    answers = predict(model, faces, model.preprocessing).argmax(1)
    labels = np.where(rng.random(n) < agree, answers, rng.integers(0, len(EMOTIONS), n))
    rows = [f"{y},{' '.join(map(str, f.ravel()))},{usage}"
            for usage in ("Training", "PublicTest") for f, y in zip(faces, labels)]
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    return path, np.bincount(labels, minlength=len(EMOTIONS))


def test_classes_listed_in_another_order_are_matched_by_name(tiny_checkpoint, tmp_path, capsys):
    order = [3, 0, 6, 1, 5, 2, 4]
    permuted = _permuted(tiny_checkpoint, tmp_path / "permuted.pt", order)
    csv, supports = _agreeing_csv(tiny_checkpoint, tmp_path / "fer2013.csv")
    data = ["--data", csv, "--cache-dir", "none"]
    results = {}
    for name, ckpt in (("plain", tiny_checkpoint), ("permuted", permuted)):
        out = tmp_path / f"{name}-calibrated.pt"
        status, _, err = _run(calibrate_main, [ckpt, "--out", out, *data], capsys)
        assert status == 0, err
        result = evaluate(out, csv, "val", None, ["none"], None)["results"]["none"]
        results[name] = (read_checkpoint(out)["temperature"], result["accuracy"],
                         {c: result["per_class"][c]["support"] for c in EMOTIONS},
                         {c: result["per_class"][c]["recall"] for c in EMOTIONS})
    assert results["permuted"][0] == pytest.approx(results["plain"][0], rel=1e-6)
    assert results["permuted"][1:] == results["plain"][1:]
    assert results["plain"][1] > 0.6 and results["plain"][2] == dict(zip(EMOTIONS, supports.tolist()))


def test_a_checkpoint_of_other_classes_is_refused_in_one_line(tmp_path, tiny_fer_csv, capsys):
    from models import build_model
    from models.checkpoint import make_checkpoint

    three = tmp_path / "three.pt"
    atomic_save(make_checkpoint(build_model("cnn", width=0.125, num_classes=3).eval(), ["happy", "sad", "other"]),
                three)
    data = ["--data", tiny_fer_csv, "--cache-dir", "none"]
    for main, argv in ((calibrate_main, [three, "--out", tmp_path / "c.pt", *data]),
                       (evaluate_main, [three, "--out", tmp_path / "eval", *data])):
        status, _, err = _run(main, argv, capsys)
        assert status == 1 and err.count("\n") == 1 and "has the classes happy, sad, other" in err, err


def test_a_full_disk_under_a_checkpoint_is_one_line(tiny_checkpoint, tiny_fer_csv, tmp_path, capsys):
    """PyTorch's own writer fails on a full disk with a RuntimeError ('enforce fail at inline_container.cc');
    the checkpoint writers report it as the full disk it is, and the checkpoint before survives."""
    from fercore.atomic import OutputError
    from fercore.cli import CommandError
    from fs_faults import contents, full_disk
    from training.outputs import save_output

    with full_disk(tmp_path / "full", free=16 * 1024) as disk:
        (disk / "last.pt").write_bytes(b"the previous checkpoint")
        with pytest.raises(OutputError, match="the disk is full"):
            atomic_save(read_checkpoint(tiny_checkpoint), disk / "c.pt")
        with pytest.raises(CommandError, match="cannot write .*last.pt: the disk is full.*continue with --resume"):
            save_output(disk / "last.pt", read_checkpoint(tiny_checkpoint))
        status, _, err = _run(calibrate_main, [tiny_checkpoint, "--out", disk / "calibrated.pt", "--data",
                                               tiny_fer_csv, "--cache-dir", "none"], capsys)
        err = err[err.index("error: "):]
        assert status == 1 and "calibrated.pt: the disk is full" in err and err.count("\n") == 1, err
        assert (disk / "last.pt").read_bytes() == b"the previous checkpoint"
        assert contents(disk) == ["last.pt"]


def test_calibrating_on_a_few_images_warns_and_says_what_the_figures_mean(tiny_checkpoint, tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = [f"{i % 7},{' '.join(map(str, rng.integers(0, 256, 48 * 48)))},{usage}"
            for usage, n in (("Training", 7), ("PublicTest", 7)) for i in range(n)]
    csv = tmp_path / "fer2013.csv"
    csv.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    status, out, err = _run(calibrate_main, [tiny_checkpoint, "--out", tmp_path / "c.pt", "--data", csv,
                                             "--cache-dir", "none"], capsys)
    assert status == 0, err
    assert "warning: val has 7 images; a temperature fitted on fewer than 500 is unreliable" in err
    assert "on the images it was fitted on (optimistic);" in out
    assert "when fitted on one half and measured on the other (what to expect on new faces)" in out

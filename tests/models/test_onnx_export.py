import numpy as np
import onnxruntime as ort
import pytest
import torch

from fercore.classes import EMOTIONS
from models import build_model
from models.checkpoint import CheckpointError, atomic_save, make_checkpoint
from models.onnx_export import export_onnx, main
from models.onnx_runtime import read_metadata


def test_onnx_gives_the_same_predictions_as_pytorch(tmp_path):
    torch.manual_seed(0)
    model = build_model("cnn", width=0.25).eval()
    path = tmp_path / "m.pt"
    atomic_save(make_checkpoint(model, EMOTIONS, metrics={"val_acc": 0.4}), path)
    assert main([str(path)]) == 0
    onnx_path = tmp_path / "m.onnx"
    meta = read_metadata(onnx_path)
    assert meta["classes"] == list(EMOTIONS) and meta["preprocessing"]["size"] == 48
    assert meta["arch_args"] == {"width": 0.25} and meta["metrics"]["val_acc"] == 0.4
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 48, 48)  # a batch: the face axis is dynamic
    got = session.run(None, {"faces": x.numpy()})[0]
    with torch.inference_mode():
        want = model(x).numpy()
    assert np.allclose(got, want, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_export_of_a_foreign_file_fails_clearly(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(CheckpointError):
        export_onnx(bad)
    assert not (tmp_path / "bad.onnx").exists()


def test_export_command_errors(tmp_path, capsys):
    """A missing or foreign checkpoint is a user error (exit status 1, one line), a missing argument a usage
    error (2); see also tests/test_cli_convention.py."""
    assert main([str(tmp_path / "missing.pt")]) == 1
    assert capsys.readouterr().err == f"error: checkpoint not found: {tmp_path / 'missing.pt'}\n"
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    assert main([str(bad)]) == 1
    assert "not a checkpoint of this project" in capsys.readouterr().err
    assert main([]) == 2
    assert "the following arguments are required: checkpoint" in capsys.readouterr().err


def _tiny(tmp_path, name="m.pt"):
    torch.manual_seed(0)
    path = tmp_path / name
    atomic_save(make_checkpoint(build_model("cnn", width=0.125).eval(), EMOTIONS), path)
    return path


def test_export_never_replaces_its_input(tmp_path, capsys):
    """-o equal to the checkpoint wrote ONNX bytes over it."""
    ck = _tiny(tmp_path)
    before = ck.read_bytes()
    (tmp_path / "folder.onnx").mkdir()
    (tmp_path / "link.onnx").symlink_to(ck)
    refused = [(ck, "must be a .onnx file"), (tmp_path / "other.pt", "must be a .onnx file"),
               (tmp_path / "noext", "must be a .onnx file"), (tmp_path / "folder.onnx", "is a folder"),
               (tmp_path / "link.onnx", "the checkpoint itself")]
    for output, message in refused:
        assert main([str(ck), "-o", str(output)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert ck.read_bytes() == before
    onnx_named = tmp_path / "weights.onnx"  # a checkpoint named .onnx: its default output is itself
    onnx_named.write_bytes(before)
    assert main([str(onnx_named)]) == 1
    assert "the checkpoint itself" in capsys.readouterr().err and onnx_named.read_bytes() == before


def test_a_failed_write_is_one_line(tmp_path, capsys):
    ck = _tiny(tmp_path)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main([str(ck), "-o", str(a_file / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("*.onnx"))


def test_a_write_that_fails_after_the_checks_is_one_line(capsys):
    """The export and quantize commands end in models.outputs.write_model: a full disk then is one CommandError."""
    import errno
    from pathlib import Path

    from fercore.cli import CommandError
    from models.outputs import write_model

    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(CommandError, match=r"^cannot write out/m.onnx: No space left on device$"):
        write_model(full_disk, Path("out/m.onnx"))

    def full_disk_said():  # what the atomic writer raises: its message already names the file
        from fercore.atomic import output_error
        raise output_error(Path("out/m.onnx"), OSError(errno.ENOSPC, "No space left on device"))

    with pytest.raises(CommandError, match=r"^cannot write out/m.onnx: the disk is full[^:]*$"):
        write_model(full_disk_said, Path("out/m.onnx"))
    assert write_model(lambda: Path("out/m.onnx"), "out/m.onnx", " (a note)") == 0
    assert capsys.readouterr().out == "wrote out/m.onnx (a note)\n"


def _forge(src, dst, **changes):
    """A copy of the export ``src`` whose metadata has ``changes`` (None deletes a key)."""
    import json

    import onnx

    from models.onnx_runtime import METADATA_KEY

    proto = onnx.load(str(src))
    entry = next(p for p in proto.metadata_props if p.key == METADATA_KEY)
    meta = json.loads(entry.value)
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    entry.value = json.dumps(meta)
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize("changes, message", [
    ({"classes": ["a", "b", "c"]}, r"3 class names for a model with 7 outputs"),
    ({"classes": ["happy"] * 7}, r"classes must be distinct"),
    ({"classes": None}, r"no 'classes' in its description"),
    ({"preprocessing": {"size": 48, "mean": 0.5, "std": 0, "margin": 0.15}}, r"std in \[0.001, 100\]"),
    ({"preprocessing": {"size": 64, "mean": 0.5, "std": 0.5}}, r"input of shape \['n', 1, 48, 48\], the description "
                                                               r"says \[n, 1, 64, 64\]"),
    ({"preprocessing": "48"}, r"preprocessing must be a mapping"),
    ({"temperature": 0}, r"temperature must be a number in \[0.01, 100\]"),
])
def test_an_onnx_file_with_forged_metadata_is_refused(tmp_path, changes, message):
    """the metadata beside the graph is checked against the graph (open_session, which the
    app's OnnxClassifier uses too)."""
    from models.onnx_runtime import open_session

    ck = _tiny(tmp_path)
    assert main([str(ck)]) == 0
    forged = _forge(tmp_path / "m.onnx", tmp_path / "forged.onnx", **changes)
    with pytest.raises(CheckpointError, match=message):
        open_session(forged)
    from realtime.classifier import OnnxClassifier

    with pytest.raises(CheckpointError, match=message):
        OnnxClassifier(forged)


def test_a_rewritten_checkpoint_gets_its_export_beside_it_refreshed(tiny_checkpoint, tmp_path):
    import shutil

    from models.checkpoint import read_checkpoint
    from models.onnx_export import refresh_export
    from models.onnx_runtime import checkpoint_digest

    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, ckpt)
    assert refresh_export(ckpt) is None and not (tmp_path / "model.onnx").exists()  # none beside it: none made
    export_onnx(ckpt)
    rewritten = read_checkpoint(ckpt)
    rewritten["temperature"] = 2.0  # as training.calibrate does
    atomic_save(rewritten, ckpt)
    assert refresh_export(ckpt) == tmp_path / "model.onnx"
    meta = read_metadata(tmp_path / "model.onnx")
    assert meta["temperature"] == 2.0 and meta["checkpoint_sha256"] == checkpoint_digest(ckpt)

"""Training's commands: an output that cannot be written fails before the work, in
one line (and a write that fails after it too); Ctrl-C while a command's libraries load ends with status 130
and no traceback."""
import errno
import subprocess
import sys
from pathlib import Path

import pytest

from fs_faults import fifo_with_reader
from training.evaluate import main as evaluate_main
from training.preview import main as preview_main

ROOT = Path(__file__).resolve().parents[2]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_evaluate_checks_its_output_folder_before_evaluating(tiny_fer_csv, tiny_checkpoint, tmp_path, capsys,
                                                             monkeypatch):
    import training.evaluate

    monkeypatch.setattr(training.evaluate, "load_members", lambda *a: pytest.fail("evaluated before checking --out"))
    args = [str(tiny_checkpoint), "--data", str(tiny_fer_csv), "--cache-dir", "none", "--tta", "none"]
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert evaluate_main(args + ["--out", str(a_file)]) == 1
    assert "--out" in one_line_error(capsys) and a_file.read_text() == "x"
    (tmp_path / "eval" / "metrics_val.json").mkdir(parents=True)  # a folder where a result goes
    assert evaluate_main(args + ["--out", str(tmp_path / "eval")]) == 1
    assert "metrics_val.json: it is a folder" in one_line_error(capsys)

    import fercore.atomic

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fercore.atomic.tempfile, "mkstemp", read_only)
    assert evaluate_main(args + ["--out", str(tmp_path / "ro")]) == 1
    assert "read-only file system" in one_line_error(capsys)


def test_evaluate_reports_a_write_that_fails_after_the_work(tiny_fer_csv, tiny_checkpoint, tmp_path, capsys,
                                                            monkeypatch):
    import training.evaluate

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(training.evaluate, "save_confusion_png", full_disk)
    out = tmp_path / "eval"
    assert evaluate_main([str(tiny_checkpoint), "--data", str(tiny_fer_csv), "--cache-dir", "none", "--tta", "none",
                          "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"error: cannot write {out / 'confusion_val_none.png'}: the disk is full")
    assert not (out / "metrics_val.json").exists()


def test_evaluate_names_a_csv_that_is_not_utf8(tiny_checkpoint, tmp_path, capsys):
    bad = tmp_path / "fer2013.csv"
    bad.write_bytes(b"emotion,pixels,Usage\n3,1 2,Publ\xefcTest\n")
    assert evaluate_main([str(tiny_checkpoint), "--data", str(bad), "--cache-dir", "none",
                          "--out", str(tmp_path / "eval")]) == 1
    assert "not UTF-8 text" in one_line_error(capsys)


def test_evaluate_usage_errors(tiny_checkpoint, capsys):
    """These are usage errors (status 2)."""
    for option in (["--batch-size", "0"], ["--device", "tpu"], ["--batch-size", "x"]):
        assert evaluate_main([str(tiny_checkpoint), *option]) == 2
        assert f"argument {option[0]}" in capsys.readouterr().err


def test_preview_checks_its_output_before_the_work(tmp_path, capsys, monkeypatch):
    import training.preview

    monkeypatch.setattr(training.preview, "augmented_grid", lambda *a, **k: pytest.fail("drew before checking -o"))
    (tmp_path / "aug.png").mkdir()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for output, message in ((tmp_path / "aug.png", "is a folder"), (tmp_path / "aug", "give a picture file name"),
                            (tmp_path / "aug.tmp", "give a picture file name"),
                            (a_file / "aug.png", "is a file, not a folder")):
        assert preview_main(["-o", str(output)]) == 1
        assert message in one_line_error(capsys)


def test_preview_writes_the_format_its_name_says(tiny_fer_csv, tmp_path, capsys):
    out = tmp_path / "aug.jpg"
    assert preview_main(["-o", str(out), "--set", f"data.root={tiny_fer_csv}", "--set", "data.cache_dir=null"]) == 0
    assert out.read_bytes()[:2] == b"\xff\xd8"  # JPEG, not a PNG named .jpg
    reader, received = fifo_with_reader(tmp_path / "pipe.png")  # a pipe gets the picture, drawn in memory first
    assert preview_main(["-o", str(tmp_path / "pipe.png"), "--set", f"data.root={tiny_fer_csv}",
                         "--set", "data.cache_dir=null"]) == 0
    reader.join(10)
    assert received and received[0][:8] == b"\x89PNG\r\n\x1a\n"


# Ctrl-C as the first heavy library loads: the module raises KeyboardInterrupt from inside its imports.
INTERRUPT_IMPORT = """
import builtins, runpy, sys
real = builtins.__import__
def interrupted(name, *args, **kwargs):
    if name.split(".")[0] in ("torch", "numpy", "cv2"):
        raise KeyboardInterrupt
    return real(name, *args, **kwargs)
builtins.__import__ = interrupted
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module, args", [
    ("training.run", ["--config", "training/configs/cnn.yaml"]),
    ("training.evaluate", ["weights/default.pt"]),
    ("training.average", ["a.pt", "b.pt", "--out", "swa.pt"]),
    ("training.preview", []),
    ("training.calibrate", ["weights/default.pt"]),
    ("training.corrupted_val", ["--out", "copy"]),
    ("training.benchmark", []),
    ("models.onnx_export", ["weights/default.pt", "-o", "x.onnx"]),
])
def test_ctrl_c_while_the_libraries_load_exits_130_quietly(module, args, tmp_path):
    result = subprocess.run([sys.executable, "-c", INTERRUPT_IMPORT, module, *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 130, result.stderr
    assert result.stderr == "interrupted\n"

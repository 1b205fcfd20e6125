"""On the training side: an earlier run is never overwritten by accident, one run at a
time writes to a folder, an unusable output.dir or a full disk is one error line, resuming says what it does;
and user problems inside the trainer are the user-error types training.run reports in one line."""
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from models.checkpoint import CheckpointError, read_checkpoint
from training.config import ConfigError
from training.data import DataError
from training.rundir import RunLock, resume_message
from training.run import main as run_main
from training.trainer import Trainer
from training.distributed import Dist, pick_device


ROOT = Path(__file__).resolve().parents[2]


def one_line_error(capsys, after_progress: bool = False) -> str:
    """The one 'error:' line on stderr (and nothing else there, unless ``after_progress`` bars of the work)."""
    err = capsys.readouterr().err
    if after_progress:
        assert "Traceback" not in err and err.count("error: ") == 1, err
        err = err[err.index("error: "):]
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def finished_run(tiny_fer_csv, tmp_path_factory, tiny_run):
    """A finished one-epoch run; tests copy it."""
    out = tmp_path_factory.mktemp("run") / "one_epoch"
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1")) == 0
    return out


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_a_new_run_into_an_earlier_runs_folder_is_refused(tiny_fer_csv, finished_run, tmp_path, capsys, tiny_run):
    out = copy_run(finished_run, tmp_path / "run")
    best, last = (out / "best.pt").read_bytes(), (out / "last.pt").read_bytes()
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1")) == 1
    err = one_line_error(capsys)
    assert "holds an earlier run (best.pt, last.pt)" in err and "--resume" in err and "--overwrite" in err
    assert (out / "best.pt").read_bytes() == best and (out / "last.pt").read_bytes() == last
    with pytest.raises(ConfigError, match="holds an earlier run"):  # the Python API too
        Trainer(tiny_run.cfg(tiny_fer_csv, out, "train.epochs=1"))
    (out / "keep.txt").write_text("the user's own file")
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1", "optim.lr=0.01") + ["--overwrite"]) == 0
    assert read_checkpoint(out / "last.pt")["config"]["optim"]["lr"] == 0.01
    assert (out / "train.log").read_text().count("epoch   1/1") == 1  # the old log went with the old run
    assert (out / "keep.txt").read_text() == "the user's own file"
    assert not (out / ".lock").exists()  # given back
    assert run_main(tiny_run.args(tiny_fer_csv, out) + ["--resume", "--overwrite"]) == 2  # one or the other


def test_a_second_run_into_a_locked_folder_fails_at_once(tiny_fer_csv, tmp_path, capsys, tiny_run):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from training.rundir import RunLock; lock = RunLock(sys.argv[1]).acquire(); print('held', "
        "flush=True); sys.stdin.read()"), str(out)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.time()
        assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1")) == 1
        assert time.time() - start < 30
        err = one_line_error(capsys)
        assert f"another run (process {holder.pid}) is writing to {out}" in err
        assert not (out / "last.pt").exists() and not (out / "train.log").exists()
    finally:
        holder.communicate("", timeout=30)
    # the holder has gone (as a killed run goes): its lock is released by the system and blocks nothing
    (out / ".lock").write_text("999999\n")  # even a left-over lock file naming a dead process
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1")) == 0


def test_the_lock_is_exclusive_and_given_back(tmp_path):
    with RunLock(tmp_path) as first:
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(ConfigError, match=f"another run \\(process {os.getpid()}\\)"):
            RunLock(tmp_path).acquire()
        assert first.fd is not None
    assert not (tmp_path / ".lock").exists()
    RunLock(tmp_path).acquire().release()


def test_resume_messages(tiny_fer_csv, finished_run, tmp_path, capsys, tiny_run):
    """Resuming says where it continues and, before any epoch has finished, no placeholder accuracy; a finished
    run says so and exits 0 without training."""
    out = copy_run(finished_run, tmp_path / "run")
    last = (out / "last.pt").read_bytes()
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1") + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "already finished (1 of 1 epochs, best val acc" in printed and "nothing to train" in printed
    assert "resumed" not in printed and "epoch   2" not in printed
    assert (out / "last.pt").read_bytes() == last

    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=2") + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "at the start of epoch 2/2; best val acc" in printed and "-1.0000" not in printed
    assert read_checkpoint(out / "last.pt")["training"]["epoch"] == 2

    state = {"epoch": 0, "step": 3, "history": [], "best_acc": -1.0, "bad_epochs": 0}
    cfg = {"train": {"epochs": 2, "early_stopping": 0}}
    assert resume_message("last.pt", state, cfg) == \
        "resumed from last.pt at epoch 1/2, batch 3; no epoch finished yet"
    stopped = {"epoch": 5, "step": 0, "history": [{"val_acc": 0.3}] * 5, "best_acc": 0.3, "bad_epochs": 3}
    assert "already finished" in resume_message("last.pt", stopped, {"train": {"epochs": 9, "early_stopping": 3}})


def test_resume_without_a_run_is_one_line(tiny_fer_csv, finished_run, tmp_path, capsys, tiny_run):
    assert run_main(tiny_run.args(tiny_fer_csv, tmp_path / "none") + ["--resume"]) == 1
    assert "nothing to resume" in one_line_error(capsys)
    out = copy_run(finished_run, tmp_path / "run")
    (out / "last.pt").write_bytes((out / "best.pt").read_bytes())  # weights only
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=2") + ["--resume"]) == 1
    assert "has no training state to resume from" in one_line_error(capsys)
    out = copy_run(finished_run, tmp_path / "run2")
    with pytest.raises(CheckpointError, match="the config asks for cnn"):  # a different model
        Trainer(tiny_run.cfg(tiny_fer_csv, out, "train.epochs=2", "model.args.width=0.25"), resume=True)
    assert not (out / ".lock").exists()  # given back after the failure
    ckpt = read_checkpoint(out / "last.pt")
    del ckpt["training"]["scaler"]  # a damaged training state
    torch.save(ckpt, out / "last.pt")
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=2") + ["--resume"]) == 1
    assert "its training state does not fit" in one_line_error(capsys, after_progress=True)


def test_an_unusable_output_dir_fails_before_anything_runs(tiny_fer_csv, tmp_path, capsys, monkeypatch, tiny_run):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert run_main(tiny_run.args(tiny_fer_csv, a_file)) == 1
    assert "output.dir" in one_line_error(capsys)
    assert run_main(tiny_run.args(tiny_fer_csv, a_file / "run")) == 1
    assert "is a file, not a folder" in one_line_error(capsys)

    import fercore.atomic

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fercore.atomic.tempfile, "mkstemp", read_only)
    assert run_main(tiny_run.args(tiny_fer_csv, tmp_path / "ro")) == 1
    assert "read-only file system" in one_line_error(capsys)


def test_too_little_room_for_the_checkpoints_fails_before_training(tiny_fer_csv, tmp_path, capsys, monkeypatch,
                                                                 tiny_run):
    import shutil

    import training.rundir

    monkeypatch.setattr(training.rundir.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    assert run_main(tiny_run.args(tiny_fer_csv, tmp_path / "run", "train.epochs=1")) == 1
    assert "MB free; this run's checkpoints need about" in one_line_error(capsys)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_disk_that_fills_during_training_is_one_line_and_keeps_what_was_saved(tiny_fer_csv, tmp_path, capsys,
                                                                                monkeypatch, tiny_run):
    out = tmp_path / "run"
    real_save, saves = torch.save, []

    def fills_up(obj, f, *args, **kwargs):
        saves.append(Path(getattr(f, "name", f)).name)  # a path or the file it opened
        if len(saves) > 2:  # epoch 1's best.pt and last.pt fit, epoch 2's do not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fills_up)
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=3")) == 1
    err = one_line_error(capsys, after_progress=True)
    assert "cannot write" in err and "--resume" in err
    assert read_checkpoint(out / "last.pt")["training"]["epoch"] == 1  # epoch 1's, whole
    assert not [p for p in out.iterdir() if ".tmp" in p.name] and not (out / ".lock").exists()


def test_user_problems_in_the_trainer_are_user_errors(tiny_fer_csv, tmp_path, capsys, monkeypatch, tiny_run):
    """A reviewer's point: these were ValueError and RuntimeError tracebacks."""
    assert run_main(tiny_run.args(tiny_fer_csv, tmp_path / "a", "train.batch_size=1000")) == 1
    assert "train.batch_size 1000 is larger than the training set" in one_line_error(capsys, after_progress=True)
    assert not (tmp_path / "a" / ".lock").exists()
    assert run_main(tiny_run.args(tiny_fer_csv, tmp_path / "b", "model.args.input_size=96")) == 1
    assert "expects 96x96 faces, data has 48x48" in one_line_error(capsys, after_progress=True)
    with pytest.raises(DataError):
        Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "c", "model.args.input_size=96"))
    from dataclasses import replace

    from fercore.cli import CommandError
    from training.build import build_parts

    parts = build_parts(tiny_run.cfg(tiny_fer_csv, tmp_path / "d"))
    diverged = Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "d"),
                       replace(parts, criterion=lambda *a: torch.tensor(float("nan"), requires_grad=True)))
    with pytest.raises(CommandError, match="the loss is nan at epoch 1, batch 1: the training diverged"):
        diverged._train_step(torch.arange(4))
    diverged.release()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        pick_device("cuda", Dist())

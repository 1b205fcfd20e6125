"""The output folder of a training run: an earlier run in it is never replaced by accident, and one run at a
time writes to it.

- A folder holding an earlier run's checkpoints (best.pt, last.pt, epoch_NNN.pt) is refused unless the run
  continues it (``--resume``) or replaces it (``--overwrite``, which first deletes what that run wrote); so is
  one holding a config.yaml a run would replace (a user's file, or a run that died before its first
  checkpoint). train.log is appended to, never replaced.
- ``check_resume``: a run continues under the settings it started with. The one change it supports is the
  number of epochs (for schedules that do not depend on it), recorded in ``resume_history.yaml``; config.yaml
  keeps the first run's record.
- ``RunLock``: while a run writes there it holds ``output.dir/.lock`` (fcntl.flock; the file names the
  process). A second run into the same folder fails at once; the lock of a process that died is released by
  the system, so a stale lock file never blocks.
- ``finished``: whether a resumable checkpoint's run has nothing left to do.
"""
from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from training.errors import ConfigError
from training.outputs import check_writable

LOCK_NAME = ".lock"
CHECKPOINTS = ("best.pt", "last.pt")
EPOCHS = "epoch_[0-9][0-9][0-9].pt"
RUN_LOGS = ("train.log", "config.yaml", "resume_history.yaml")
# Settings that change how a run is carried out but not what it trains: they may differ when it resumes.
RESUME_FREE = ("output.dir", "output.tensorboard", "data.cache_dir", "train.device", "train.threads",
               "train.eval_batch_size")
TENSORBOARD_EVENTS = "tensorboard/events.out.tfevents.*"


def earlier_run(out: str | Path) -> list[str]:
    """The checkpoints an earlier run left in ``out``."""
    out = Path(out)
    return [name for name in CHECKPOINTS if (out / name).exists()] + sorted(p.name for p in out.glob(EPOCHS))


def check_run_folder(out: str | Path, resume: bool, overwrite: bool, config_file: bool = True) -> None:
    """ConfigError unless a run may write to ``out``: a folder (or none yet) that can be written, holding no
    earlier run unless ``overwrite`` (with ``config_file``, no config.yaml a run would replace either: torchrun's other
    processes leave that to the first, which may have written it already), and with ``resume`` a last.pt to
    continue from."""
    out = Path(out)
    check_writable(out, folder=True, what="output.dir", error=ConfigError)
    if resume:
        if not (out / "last.pt").is_file():
            raise ConfigError(f"nothing to resume: {out / 'last.pt'} does not exist (start the run without --resume)")
        return
    found = earlier_run(out)
    if found and not overwrite:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise ConfigError(f"output.dir {out} holds an earlier run ({shown}); continue it with --resume, replace "
                          "it with --overwrite, or choose another output.dir")
    if config_file and not overwrite and (out / "config.yaml").exists():
        raise ConfigError(f"output.dir {out} holds config.yaml but no checkpoint (your own file, or a run that "
                          "stopped before its first one); a run would replace it: choose another output.dir, or "
                          "--overwrite to replace it")


def clear_earlier_run(out: str | Path) -> list[Path]:
    """Delete what an earlier run wrote to ``out`` (its checkpoints, log, config and TensorBoard events), so the
    new run's files are never mixed with it; the files deleted."""
    out = Path(out)
    doomed = [out / n for n in (*CHECKPOINTS, *RUN_LOGS)] + sorted(out.glob(EPOCHS)) + sorted(
        out.glob(TENSORBOARD_EVENTS))
    deleted = []
    for path in doomed:
        if path.is_file():
            path.unlink()
            deleted.append(path)
    return deleted


class RunLock:
    """An exclusive lock on a run folder, held from ``acquire`` to ``release`` (or the process's end)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise ConfigError(f"another run (process {holder}) is writing to {self.out}; wait for it to "
                                      "finish or choose another output.dir") from None
                try:  # the holder before may have deleted the file between our open and our lock
                    current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    current = False
                if current:
                    break
                os.close(fd)
            self.fd = fd
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.fsync(fd)
        except OSError as exc:
            self.release()
            raise ConfigError(f"cannot write to output.dir {self.out}: {exc.strerror or exc}") from None
        return self

    def release(self) -> None:
        """Give the folder back (the lock file goes too); safe to call twice."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it, so no one holds a deleted file's lock
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def claim_run_folder(out: str | Path, resume: bool, overwrite: bool) -> RunLock:
    """Check ``out`` (check_run_folder), lock it, and with ``overwrite`` clear the earlier run: the held lock."""
    check_run_folder(out, resume, overwrite)
    lock = RunLock(out).acquire()
    try:
        check_run_folder(out, resume, overwrite)  # again, now no other run can change it
        if overwrite and not resume:
            clear_earlier_run(out)
    except BaseException:
        lock.release()
        raise
    return lock


def check_free_space(out: str | Path, weight_bytes: int, cfg: dict) -> None:
    """ConfigError when ``out``'s disk has clearly too little room for the run's checkpoints: last.pt (weights
    and optimizer state, twice while it is replaced), best.pt and with output.keep_epochs one file per epoch."""
    need = weight_bytes * (8 + (cfg["train"]["epochs"] if cfg["output"]["keep_epochs"] else 0))
    free = shutil.disk_usage(out).free
    if free < need:
        raise ConfigError(f"output.dir {out} has {free / 2**20:,.0f} MB free; this run's checkpoints need about "
                          f"{need / 2**20:,.0f} MB")


def _flat(cfg: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and f"{prefix}{key}" != "model.args":
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resume(saved: dict, cfg: dict, where: str | Path) -> dict:
    """The settings ``cfg`` changes from ``saved`` (the config of the run in the checkpoint ``where``) as
    {key: [before, now]}: only train.epochs, under a schedule that does not depend on it, besides RESUME_FREE.
    ConfigError naming the changed keys otherwise: a run that resumes under other settings would mix two runs
    (another learning rate, another val set)."""
    if not saved:  # a checkpoint that does not record its config: nothing to compare
        return {}
    before, now = _flat(saved), _flat(cfg)
    changed = {key: [before.get(key), now.get(key)] for key in sorted(set(before) | set(now))
               if key not in RESUME_FREE and before.get(key, "absent") != now.get(key, "absent")}
    refused = [key for key in changed if key != "train.epochs"]
    if "train.epochs" in changed and cfg["sched"]["name"] in ("cosine", "onecycle"):
        refused.append(f"train.epochs (the {cfg['sched']['name']} schedule was laid out for "
                       f"{before['train.epochs']} epochs)")
    if refused:
        shown = "; ".join(f"{key}: {changed[key][0]!r} -> {changed[key][1]!r}" if key in changed else key
                          for key in refused)
        raise ConfigError(f"cannot resume {where} with other settings ({shown}): a resumed run keeps its own, "
                          "except more (or fewer) train.epochs; start a new run in another output.dir, or "
                          "--overwrite this one")
    return changed


def record_resume(out: str | Path, state: dict, changed: dict) -> str:
    """The text of ``out``'s resume_history.yaml with this resume appended: when, from which epoch and batch,
    and the settings it changed."""
    import datetime

    import yaml

    path = Path(out) / "resume_history.yaml"
    history = yaml.safe_load(path.read_text()) if path.is_file() else None
    entry = {"resumed": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
             "epoch": state["epoch"], "batch": state["step"],
             "changed": {key: {"was": was, "now": now} for key, (was, now) in changed.items()}}
    return yaml.safe_dump((history if isinstance(history, list) else []) + [entry], sort_keys=False)


def finished(state: dict, cfg: dict) -> bool:
    """Whether a run whose resumable state is ``state`` has nothing left to train under ``cfg``: all its epochs
    done, or early stopping already fired."""
    patience = cfg["train"]["early_stopping"]
    return state["epoch"] >= cfg["train"]["epochs"] or bool(patience and state["bad_epochs"] >= patience)


def resume_message(path: str | Path, state: dict, cfg: dict) -> str:
    """What resuming from ``path`` (holding ``state``) does under ``cfg``, for the log."""
    epochs, history = cfg["train"]["epochs"], state["history"]
    best = f"best val acc {state['best_acc']:.4f}" if history else "no epoch finished yet"
    if finished(state, cfg):
        return f"{path}: the run has already finished ({len(history)} of {epochs} epochs, {best}); nothing to train"
    at = f"epoch {state['epoch'] + 1}/{epochs}, batch {state['step']}" if state["step"] else \
        f"the start of epoch {state['epoch'] + 1}/{epochs}"
    return f"resumed from {path} at {at}; {best}"

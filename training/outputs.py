"""The training commands' outputs: tried before the work starts, and a training's files written atomically.

An evaluation, a preview or a training run should not end in a traceback after its work because its output
folder is read-only, a file stands where a folder should be, or the disk is full. The probing and the wording
are fercore.atomic's (shared with the realtime commands); this adds the option's name and the error type each
command reports. save_output writes a training's checkpoints and records whole or not at all, and stops the
run in one line when that fails.
"""
from __future__ import annotations

from pathlib import Path

from fercore.atomic import OutputError, atomic_path, check_writable as probe, describe
from fercore.cli import CommandError


def check_writable(path: str | Path, folder: bool = False, what: str = "",
                   error: type[Exception] = CommandError) -> None:
    """Raise ``error`` now unless ``path`` (a file, or with ``folder`` a folder to write files into) can be
    written; ``what`` (e.g. '--out') starts the message."""
    try:
        probe(path, folder=folder)
    except OutputError as exc:
        raise error(f"{what}: {exc}" if what else str(exc)) from None


def save_output(path: Path, obj: dict | str) -> None:
    """A checkpoint (or text) written atomically; a full disk or a read-only folder stops the run in one line
    (CommandError), keeping the files written before."""
    from models.checkpoint import atomic_save  # torch: only a training saves checkpoints

    try:
        if isinstance(obj, str):
            with atomic_path(path) as tmp:
                tmp.write_text(obj)
        else:
            atomic_save(obj, path)
    except OSError as exc:
        then = "; make room and continue with --resume" if (path.parent / "last.pt").is_file() else ""
        raise CommandError(describe(path, exc) + then) from None

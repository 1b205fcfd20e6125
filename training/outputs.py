"""Outputs tried before the work starts, and write failures told in one line.

An evaluation, a preview or a training run should not end in a traceback after its work because its output
folder is read-only, a file stands where a folder should be, or the disk is full: ``check_writable`` writes a
probe byte there first (``os.access`` says yes to root on a read-only mount), and ``write_failure`` words an
OSError of the real write.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fercore.cli import CommandError


def write_failure(path: str | Path, exc: OSError) -> str:
    """One line saying why ``path`` could not be written."""
    reason = exc.strerror or str(exc)
    return reason if reason.startswith("cannot ") else f"cannot write {path}: {reason}"


def check_writable(path: str | Path, folder: bool = False, what: str = "",
                   error: type[Exception] = CommandError) -> None:
    """Raise ``error`` now unless ``path`` (a file, or with ``folder`` a folder to write files into) can be
    written; ``what`` (e.g. '--out') starts the message. Creates nothing that stays: a folder that does not exist
    yet is tried at the nearest one above it that does."""
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    if folder and path.exists() and not path.is_dir():
        raise error(f"{name} is a file, not a folder")
    if not folder and path.is_dir():
        raise error(f"{name} is a folder; give a file name")
    where = path if folder else path.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise error(f"cannot write {name}: {where} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".write-test.")
        try:
            os.write(fd, b"\0")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise error(f"cannot write {name}: {exc.strerror or exc}") from None

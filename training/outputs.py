"""Outputs tried before the work starts, for the training commands.

An evaluation, a preview or a training run should not end in a traceback after its work because its output
folder is read-only, a file stands where a folder should be, or the disk is full. The probing and the wording
are fercore.atomic's (shared with the realtime commands); this adds the option's name and the error type each
command reports.
"""
from __future__ import annotations

from pathlib import Path

from fercore.atomic import OutputError, check_writable as probe
from fercore.cli import CommandError


def check_writable(path: str | Path, folder: bool = False, what: str = "",
                   error: type[Exception] = CommandError) -> None:
    """Raise ``error`` now unless ``path`` (a file, or with ``folder`` a folder to write files into) can be
    written; ``what`` (e.g. '--out') starts the message."""
    try:
        probe(path, folder=folder)
    except OutputError as exc:
        raise error(f"{what}: {exc}" if what else str(exc)) from None

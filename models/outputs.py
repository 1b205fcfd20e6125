"""The model files commands write (a calibrated or averaged checkpoint, an ONNX export), checked before any work.

A model output is written atomically over nothing or over a model of its own kind, never over one of the
command's inputs (by name, through a link or a hard link), a photo or notes that happen to carry the name, a
folder, a device or a pipe. The check runs before the work, so a refused output costs nothing and replaces
nothing. A write that fails all the same (a full disk) ends the command in one line (write_model).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from fercore.atomic import OutputError, check_writable, printable
from fercore.cli import CommandError

KINDS = {".pt": "a checkpoint", ".onnx": "an ONNX export"}


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _is_model(path: Path, suffix: str) -> bool:
    """Whether the existing file ``path`` is a model of the kind ``suffix`` names that this project reads."""
    from models.errors import CheckpointError

    try:
        if suffix == ".pt":
            from models.checkpoint import read_checkpoint

            read_checkpoint(path)
        else:
            from models.onnx_runtime import open_session

            open_session(path)
    except CheckpointError:
        return False
    return True


def check_model_output(output: str | Path, suffix: str, inputs: Iterable[str | Path] = (),
                       what: str = "the output", keep_others: bool = True) -> Path:
    """``output`` if a model of the kind ``suffix`` names (KINDS) may be written there; CommandError (``what``
    starts its one line) when it lacks the suffix, is a folder, a device or a pipe, is one of ``inputs``, its
    folder cannot be written, or (with ``keep_others``, for a file the user named) is an existing file that is
    not such a model."""
    output = Path(output)
    kind = KINDS[suffix]
    if output.suffix.lower() != suffix:
        raise CommandError(f"{what} must be a {suffix} file, got {printable(output)}")
    if output.is_dir():
        raise CommandError(f"{what} {printable(output)} is a folder; give a {suffix} file")
    paths = [Path(p) for p in inputs]
    for path in paths:
        if _same_file(output, path):
            which = "" if len(paths) == 1 else f" {printable(path)}"
            raise CommandError(f"{what} {printable(output)} is the checkpoint{which} itself; give another "
                               f"{suffix} file")
    try:
        check_writable(output, devices=False)
    except OutputError as exc:
        raise CommandError(f"{what}: {exc}" if what.startswith("-") else str(exc)) from None  # an option's name
    if keep_others and output.exists() and not _is_model(output, suffix):
        raise CommandError(f"{what} {printable(output)} exists and is not {kind} of this project; it is kept: "
                           "remove it or give another name")
    return output


def write_model(write: Callable[[], Path], output: str | Path, note: str = "") -> int:
    """A model command's last step: ``write()`` writes the model file ``output`` atomically and returns its path,
    printed as 'wrote PATH' and ``note``; an OSError (a read-only folder, a full disk: the atomic writer has left
    nothing behind) becomes one CommandError line. Returns the exit status, 0."""
    try:
        written = write()
    except OutputError as exc:  # already says which file and why
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from exc
    print(f"wrote {written}{note}")
    return 0

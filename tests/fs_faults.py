"""File-system faults for the reliability tests: a full disk (a small tmpfs filled up), a read-only folder, and
what a folder holds (hidden temporary files included). A real tmpfs needs root; without it those tests skip and
the patched-writer tests stand in."""
from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def _mount(path: Path, options: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (the patched-writer tests cover the same code)")
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


@contextmanager
def full_disk(path: Path, free: int = 48 * 1024) -> Iterator[Path]:
    """A 1 MB tmpfs at ``path`` filled up to ``free`` bytes left: a disk about to be full."""
    _mount(path, "size=1m")
    try:
        filler = path / ".filler"
        total = shutil.disk_usage(path).free
        filler.write_bytes(b"\0" * max(0, total - free))
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextmanager
def readonly_dir(path: Path) -> Iterator[Path]:
    """A folder that cannot be written: a read-only tmpfs as root (root ignores permissions), else mode 0555."""
    if os.geteuid() == 0:
        _mount(path, "size=64k,ro")
        try:
            yield path
        finally:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
    else:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)


def contents(folder: Path) -> list[str]:
    """Every name under ``folder``, hidden ones included (a leftover temporary file shows), but the filler."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != ".filler")

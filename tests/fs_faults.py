"""File-system faults for the reliability tests: a full disk (a small tmpfs filled up, or a video writer that
silently drops frames), a read-only folder, a PNG header announcing a huge image, and what a folder holds
(hidden temporary files included). A real tmpfs needs root; without it those tests skip and
the patched-writer tests stand in; a pipe with a reader."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
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


class DroppingWriter:
    """cv2.VideoWriter as on a full disk: it takes every frame and says nothing, but only the first few land."""

    real = cv2.VideoWriter

    def __init__(self, *args, keep: int = 3) -> None:
        self._writer = self.real(*args)
        self.keep = keep

    def isOpened(self):
        return self._writer.isOpened()

    def write(self, frame):
        if self.keep > 0:
            self._writer.write(frame)
            self.keep -= 1

    def release(self):
        self._writer.release()


def png_header(width: int, height: int) -> bytes:
    """A PNG that announces ``width`` x ``height`` (its pixels are cut short: only the header matters)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def fifo_with_reader(path: Path) -> tuple[threading.Thread, list[bytes]]:
    """A named pipe at ``path`` and a thread reading it: join the thread, then the list holds what came through."""
    os.mkfifo(path)
    received: list[bytes] = []

    def read():
        with open(path, "rb") as fh:
            received.append(fh.read())
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader, received

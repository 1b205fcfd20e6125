"""Atomic file writes: a reader never sees a half-written checkpoint, cache, video or result file.

- ``atomic_path`` hands out a hidden temporary name beside the destination (``.name.PID.XXXXXXXX.tmp.ext``); when
  the block completes the file is flushed to the disk (fsync), renamed into place and the rename made durable
  (fsync of the folder); when the block fails the temporary file is deleted. A write that fails for a reason the
  user can fix (a full disk, a read-only folder, a folder in the way) becomes one ``OutputError``, which every
  entry point reports in one ``error:`` line (it is a ``fercore.cli.CommandError``, and still an ``OSError``).
- Temporary files of the same destination left by processes that no longer run (kill -9, a power cut) are
  removed the next time that destination is written: their names carry the writer's process id.
- Only a regular file (or nothing) is ever renamed over. A link is followed: the file it names is replaced and
  the link stays. A character device or a pipe the user names (``/dev/null``, a terminal, a FIFO, ``/dev/stdout``
  and the other ``/dev/fd/N`` links to an open file) is written straight, as any Unix tool would, with no
  temporary file and no rename; a writer whose format makes no sense there (a checkpoint, an ONNX model, a video:
  they need a file they can seek in and read back) passes ``devices=False`` and such a path is refused with one
  ``OutputError``. A block device (a disk) or a socket is always refused.
- ``check_writable`` tries an output before the work starts, so a run fails at once instead of at the end.
- ``interrupt_on_termination`` turns SIGTERM and SIGHUP into the same clean-up as Ctrl-C.
"""
from __future__ import annotations

import errno
import io
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fercore.cli import CommandError

_UMASK = os.umask(0)  # read once (os.umask can only be read by setting it), then restored
os.umask(_UMASK)

# Failures of a write that the user can fix by choosing another place or making room.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                          errno.EISDIR, errno.ENOTDIR, errno.EIO, errno.ENAMETOOLONG, errno.ENOENT})


class OutputError(CommandError, OSError):
    """An output that cannot be written (full disk, read-only folder, a folder in the way); one line says why.
    ``OutputError(errno, message)`` keeps the errno; its text is the message alone."""

    def __str__(self) -> str:
        return self.strerror if self.strerror is not None else super().__str__()


def printable(path: str | Path | int) -> str:
    """A path (or a camera number) as text that can always be printed or stored as JSON: bytes that are not UTF-8
    (kept by Python as surrogates) are shown as \\xNN."""
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def not_a_file(path: str | Path, what: str) -> str:
    """Why ``path`` cannot be read as a ``what`` file (a video, a checkpoint): '<what> not found: PATH' when
    nothing is there, else that it is a broken link or not a file (a folder, a device or a pipe)."""
    path, shown = Path(path), printable(path)
    if path.is_symlink() and not path.exists():
        return f"{shown} is a broken link or a loop of links"
    if not path.exists():
        return f"{what} not found: {shown}"
    return f"{shown} is not a{'n' if what[0] in 'aeiouAEIOU' else ''} {what} file (a folder, a device or a pipe)"


def free_space(folder: str | Path) -> str:
    """The free space of the disk holding ``folder``, for messages ('' when unknown)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return ""
    for unit in ("bytes", "KB", "MB", "GB"):
        if free < 1024:
            break
        free /= 1024
    else:
        unit = "TB"
    return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"


def describe(path: str | Path, exc: OSError) -> str:
    """One line saying why ``path`` could not be written."""
    path = Path(path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = free_space(path.parent)
        return f"cannot write {printable(path)}: the disk is full ({free} free there)" if free else \
            f"cannot write {printable(path)}: the disk is full"
    if exc.errno == errno.EROFS:
        return f"cannot write {printable(path)}: the folder is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot write {printable(path)}: permission denied"
    if exc.errno == errno.EISDIR:
        return f"cannot write {printable(path)}: it is a folder"
    return f"cannot write {printable(path)}: {exc.strerror or exc}"


def output_error(path: str | Path, exc: OSError) -> OutputError:
    err = OutputError(exc.errno, describe(path, exc))
    err.__cause__ = exc
    return err


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


# atomic_path's temporary names: ".<stem>.<pid>.<8 random characters of mkstemp>.tmp<suffix>".
_TEMP_NAME = re.compile(r"\.(?P<stem>.*)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp(?P<suffix>(\.[^.]*)?)")
# Per folder, the temporary files found there the first time this process wrote into it, by destination
# (stem, suffix): one listing per folder, not one per file written (a folder of 10,000 annotated photos).
_FOUND: dict[str, dict[tuple[str, str], list[tuple[str, int]]]] = {}
_FOUND_LOCK = threading.Lock()


def _temps_in(folder: Path) -> dict[tuple[str, str], list[tuple[str, int]]]:
    key = os.fspath(folder.absolute())
    with _FOUND_LOCK:
        if key not in _FOUND:
            found: dict[tuple[str, str], list[tuple[str, int]]] = {}
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            for name in names:
                if m := _TEMP_NAME.fullmatch(name):
                    found.setdefault((m["stem"], m["suffix"]), []).append((name, int(m["pid"])))
            _FOUND[key] = found
        return _FOUND[key]


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete the temporary files of ``path`` left by writers that no longer run (kill -9, a power cut); the
    ones deleted. The folder is listed the first time this process writes into it; a writer that dies later
    leaves its file to the next run."""
    path = Path(path)
    candidates = _temps_in(path.parent).get((path.stem, path.suffix), [])
    with _FOUND_LOCK:
        stale = [(name, pid) for name, pid in candidates if pid != os.getpid() and not _alive(pid)]
        for item in stale:
            candidates.remove(item)
    removed = []
    for name, _ in stale:
        try:
            os.unlink(path.parent / name)
            removed.append(path.parent / name)
        except OSError:
            pass
    return removed


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if not directory or exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise  # some file systems cannot sync a folder; a file must be synced
    finally:
        os.close(fd)


# The folders of a process's open files (/dev/fd and /dev/stdout lead there): a name in them is written straight.
_FD_FOLDER = re.compile(r"/proc/(self|thread-self|\d+)(/task/\d+)?/fd")


def _names_open_file(path: Path) -> bool:
    """Whether ``path``, or a link it leads through, is one of a process's open files (/dev/stdout, /dev/fd/1)."""
    for _ in range(40):  # the kernel's own limit on links followed
        if _FD_FOLDER.fullmatch(os.path.realpath(path.parent)):
            return True
        if not path.is_symlink():
            return False
        path = path.parent / os.readlink(path)
    return False


_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))
_STRAIGHT = ("a character device", "a pipe (FIFO)", "an open file of a process")  # what may be written straight


def destination(path: str | Path, devices: bool = True) -> tuple[Path, bool]:
    """Where a write of ``path`` lands and whether it is written straight (True) rather than renamed into place.

    A link is followed to the file it names. A character device or a pipe, or a name of an open file
    (/dev/stdout), is written straight; with ``devices=False``, and always for a block device or a socket, it is
    an OutputError. A folder is an OutputError too."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet; a file in the way is found later
        mode = None
    except OSError as exc:  # a loop of links, a name too long
        raise output_error(path, exc) from exc
    if mode is None or (stat.S_ISREG(mode) and not _names_open_file(path)):
        return (Path(os.path.realpath(path)) if path.is_symlink() else path), False
    if stat.S_ISDIR(mode):
        raise OutputError(errno.EISDIR, f"cannot write {printable(path)}: it is a folder")
    kind = "an open file of a process" if stat.S_ISREG(mode) else \
        next((name for test, name in _KINDS if test(mode)), "a special file")
    if devices and kind in _STRAIGHT:
        return path, True
    why = "this output must be a regular file" if kind in _STRAIGHT else "give a regular file"
    raise OutputError(errno.EINVAL, f"cannot write {printable(path)}: it is {kind}, not a file; {why}")


@contextmanager
def atomic_path(path: str | Path, devices: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success sync it and rename it to ``path``, on error delete it.

    The temporary name keeps the suffix, so writers that pick a format from it (OpenCV, numpy) still work.
    OSErrors of the write itself (the block's or the sync's) that the user can fix become OutputError.
    A link is followed (the file it names is replaced); a device or a pipe is yielded as it is, to be written
    straight, or with ``devices=False`` refused (see ``destination``).
    """
    given = Path(path)
    path, straight = destination(given, devices)
    if straight:
        try:
            yield path
        except OSError as exc:
            if not isinstance(exc, OutputError) and exc.errno in WRITE_ERRNOS:
                raise output_error(given, exc) from exc
            raise
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.{os.getpid()}.",
                                   suffix=f".tmp{path.suffix}")
        os.close(fd)
    except OSError as exc:
        raise output_error(path, exc) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes owner-only files; give the result the permissions an ordinary open() would.
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        _fsync(tmp_path)  # the data is on the disk before the name says it is complete
        os.replace(tmp_path, path)
        _fsync(path.parent, directory=True)  # and the rename survives a power cut
    except BaseException as exc:
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, OutputError) and exc.errno in WRITE_ERRNOS \
                and exc.filename in (None, str(tmp_path), str(path), str(path.parent)):
            raise output_error(path, exc) from exc
        raise


def write_figure(figure, path: str | Path, **options) -> None:
    """Save a matplotlib figure to ``path`` in the format its suffix names (PNG without one), atomically; ``options``
    go to savefig (dpi, ...). It is drawn in memory first: matplotlib's PNG writer seeks in its file, which a pipe
    (written straight) cannot."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", **options)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def check_writable(path: str | Path, folder: bool = False, devices: bool = True) -> None:
    """Raise OutputError now if ``path`` (a file, or with ``folder`` a folder to write files into) cannot be
    written: a folder (or a file) in the way, a read-only or full disk, no permission, a device or pipe that
    atomic_path with the same ``devices`` would refuse. Creates nothing that stays: folders that do not exist
    yet are tried at the nearest one that does; a device or pipe is not opened (a pipe would wait for a reader)."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise OutputError(errno.ENOTDIR, f"cannot write into {printable(path)}: it is a file, not a folder")
    if not folder:
        path, straight = destination(path, devices)
        if straight:
            if not os.access(path, os.W_OK):
                raise OutputError(errno.EACCES, f"cannot write {printable(path)}: permission denied")
            return
    where = path if folder else path.parent
    where = where if str(where) else Path(".")
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise OutputError(errno.ENOTDIR, f"cannot write {printable(path)}: {printable(where)} is a file, "
                                         "not a folder")
    try:  # the one sure test: write a byte there and sync it (os.access ignores read-only mounts for root)
        fd, probe = tempfile.mkstemp(dir=where, prefix=".write-test.")
        try:
            os.write(fd, b"\0")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise output_error(path, exc) from exc


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that every write in progress cleans up after itself."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)

    def __reduce__(self):  # rebuilt from the signal number, so that it crosses a process pool's pipe
        return type(self), (self.signum,)


TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def interrupt_on_termination() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise Terminated (a KeyboardInterrupt) instead of ending the process
    on the spot, so temporary files are deleted as for Ctrl-C. A signal ignored before (``nohup``) stays
    ignored; outside the main thread this does nothing (Python only handles signals there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    previous = {}
    for s in TERMINATION_SIGNALS:
        if signal.getsignal(s) == signal.SIG_DFL:
            previous[s] = signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

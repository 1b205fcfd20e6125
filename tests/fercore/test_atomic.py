"""fercore.atomic: synced before the rename, write failures as one OutputError, stale temporary files of dead
writers removed, outputs tried before the work, SIGTERM and SIGHUP cleaned up like Ctrl-C."""
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fercore import atomic
from fercore.atomic import OutputError, Terminated, atomic_path, check_writable, interrupt_on_termination
from fercore.cli import CommandError
from fs_faults import contents, full_disk, readonly_dir

ROOT = Path(__file__).resolve().parents[2]


def test_the_file_and_its_folder_are_synced_around_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                         real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b))[1])
    with atomic_path(tmp_path / "r.json") as tmp:
        tmp.write_text("{}")
    (fsync_file, temp), (replace, dest), (fsync_dir, folder) = events
    assert (fsync_file, replace, fsync_dir) == ("fsync", "replace", "fsync")
    assert Path(temp).name.startswith(".r.") and dest == str(tmp_path / "r.json") and folder == str(tmp_path)
    assert (tmp_path / "r.json").read_text() == "{}"


def test_the_temporary_name_carries_the_writer_pid(tmp_path):
    with atomic_path(tmp_path / "clip.mp4") as tmp:
        assert tmp.name.startswith(f".clip.{os.getpid()}.") and tmp.name.endswith(".tmp.mp4")
        tmp.write_bytes(b"x")


def test_a_full_disk_is_one_output_error_and_leaves_nothing(tmp_path, monkeypatch):
    def no_space(self, data, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Path, "write_text", no_space)
    with pytest.raises(OutputError, match="cannot write .*r.json: the disk is full") as info:
        with atomic_path(tmp_path / "r.json") as tmp:
            tmp.write_text("{}")
    assert isinstance(info.value, CommandError) and isinstance(info.value, OSError)
    assert info.value.errno == errno.ENOSPC
    assert contents(tmp_path) == []


def test_a_real_full_disk(tmp_path):
    with full_disk(tmp_path / "full", free=8 * 1024) as disk:
        with pytest.raises(OutputError, match="the disk is full"):
            with atomic_path(disk / "big.bin") as tmp:
                tmp.write_bytes(b"\1" * 200_000)
        assert contents(disk) == []


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    """kill -9 leaves a temporary file; the next write of the same destination removes it, and only it."""
    script = ("import os, signal, sys; from fercore.atomic import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n"
              "    tmp.write_bytes(b'half a checkpoint'); os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "last.pt")], cwd=ROOT)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    (left,) = contents(tmp_path)
    assert left.startswith(f".last.{proc.pid}.")
    alive = tmp_path / f".last.{os.getpid()}.abcd1234.tmp.pt"  # a live writer's (this process)
    alive.write_bytes(b"")
    other = tmp_path / f".best.{proc.pid}.abcd1234.tmp.pt"  # another destination's
    other.write_bytes(b"")
    with atomic_path(tmp_path / "last.pt") as tmp:
        tmp.write_bytes(b"done")
    assert contents(tmp_path) == sorted([alive.name, other.name, "last.pt"])


def test_outputs_are_tried_before_the_work(tmp_path):
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(OutputError, match="it is a folder"):
        check_writable(tmp_path / "folder.json")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "r.json")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable(tmp_path / "file", folder=True)
    check_writable(tmp_path / "new" / "deeper" / "r.json")  # made later, by the writer
    check_writable(tmp_path / "new", folder=True)
    assert not (tmp_path / "new").exists() and contents(tmp_path) == ["file", "folder.json"]
    with readonly_dir(tmp_path / "ro") as ro:
        with pytest.raises(OutputError, match="cannot write .*r.json: (the folder is on a read-only file system|"
                                              "permission denied)"):
            check_writable(ro / "r.json")


def test_sigterm_and_sighup_clean_up_like_ctrl_c(tmp_path):
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with pytest.raises(Terminated) as info:
            with interrupt_on_termination(), atomic_path(tmp_path / "out.mp4") as tmp:
                tmp.write_bytes(b"partial")
                os.kill(os.getpid(), signum)
                time.sleep(5)  # the handler raises here at once
        assert isinstance(info.value, KeyboardInterrupt) and info.value.signum == signum
        assert contents(tmp_path) == []
        assert signal.getsignal(signum) == signal.SIG_DFL  # restored


def test_an_ignored_hangup_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with interrupt_on_termination():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_terminated_crosses_a_process_boundary():
    # a worker's interrupted job sends it back through a pipe: unpickling must rebuild it, not break the pool
    import pickle
    back = pickle.loads(pickle.dumps(Terminated(signal.SIGHUP)))
    assert isinstance(back, Terminated) and back.signum == signal.SIGHUP and str(back) == "SIGHUP"

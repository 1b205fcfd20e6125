"""fercore.atomic never renames over anything but a regular file or nothing: a character device or a pipe the
user names is written straight (or refused where a file is needed), a link keeps pointing where it did."""
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from fercore.atomic import OutputError, atomic_path, check_writable
from fs_faults import contents, fifo_with_reader


def _char_device(path: Path) -> Path:
    """A null device (major 1, minor 3) made in a test folder: never the real /dev nodes."""
    if os.geteuid() != 0:
        pytest.skip("making a character device needs root")
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError as exc:
        pytest.skip(f"cannot make a character device here: {exc}")
    return path


def test_a_character_device_is_written_straight_and_stays_a_device(tmp_path):
    null = _char_device(tmp_path / "null")
    check_writable(null)
    with atomic_path(null) as target:
        target.write_text('{"a": 1}\n')
    assert stat.S_ISCHR(os.stat(null).st_mode) and os.stat(null).st_rdev == os.makedev(1, 3)
    assert contents(tmp_path) == ["null"]


def test_a_fifo_is_written_straight_to_its_reader(tmp_path):
    fifo = tmp_path / "pipe.csv"
    reader, received = fifo_with_reader(fifo)
    check_writable(fifo)  # does not open it: that would wait for a reader
    with atomic_path(fifo) as target:
        target.write_text("a,b\n1,2\n")
    reader.join(timeout=10)
    assert received == [b"a,b\n1,2\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and contents(tmp_path) == ["pipe.csv"]


def test_outputs_that_need_a_file_refuse_devices_and_pipes(tmp_path):
    from models.checkpoint import atomic_save

    os.mkfifo(tmp_path / "pipe.pt")
    outputs = [tmp_path / "pipe.pt"]
    if os.geteuid() == 0:
        outputs.append(_char_device(tmp_path / "null.pt"))
    for path in outputs:
        for attempt in (lambda: check_writable(path, devices=False), lambda: atomic_save({"a": 1}, path)):
            with pytest.raises(OutputError, match=f"cannot write {path}: it is a (character device|pipe \\(FIFO\\)), "
                                                  "not a file; this output must be a regular file"):
                attempt()
        assert not stat.S_ISREG(os.stat(path).st_mode)
    assert contents(tmp_path) == sorted(p.name for p in outputs)


def test_a_name_of_an_open_file_is_written_straight(tmp_path):
    """/dev/stdout and /dev/fd/N lead to /proc/<pid>/fd/N: the open file is written, its name is not replaced."""
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        inode = os.stat(log).st_ino
        stdout = tmp_path / "stdout"
        stdout.symlink_to(f"/proc/self/fd/{fh.fileno()}")
        with atomic_path(stdout) as target:
            target.write_text("results\n")
    assert os.stat(log).st_ino == inode and log.read_text() == "results\n"
    assert stdout.is_symlink()


def test_a_link_is_followed_and_kept(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "r.json"
    target.write_text("old")
    link = tmp_path / "r.json"
    link.symlink_to(target)
    with atomic_path(link) as tmp:
        assert tmp.parent == target.parent
        tmp.write_text("new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_loop_of_links_is_one_output_error(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OutputError, match="cannot write .*a: Too many levels of symbolic links"):
        with atomic_path(tmp_path / "a") as tmp:
            tmp.write_text("x")


def test_results_files_reach_a_device(tmp_path):
    from realtime import results

    null = _char_device(tmp_path / "null")
    results.write_json(null, results.header(["a"]), [], {})
    results.write_csv(null, [], ["a"])
    assert stat.S_ISCHR(os.stat(null).st_mode)


def test_a_video_to_a_pipe_is_refused_not_left_waiting(tmp_path):
    """A video is read back before it is accepted: written straight into a pipe it would wait for ever."""
    import subprocess
    import sys

    fifo = tmp_path / "clip.avi"
    os.mkfifo(fifo)
    script = ("import sys, numpy as np; from realtime.video_io import video_writer\n"
              "with video_writer(sys.argv[1], 25, (64, 48)) as w:\n"
              "    w.write(np.zeros((48, 64, 3), np.uint8))\n")
    reader = subprocess.Popen(["sh", "-c", f"cat '{fifo}' > /dev/null"])
    try:
        proc = subprocess.run([sys.executable, "-c", script, str(fifo)], cwd=Path(__file__).resolve().parents[2],
                              capture_output=True, text=True, timeout=60)
    finally:
        reader.kill()
    assert proc.returncode == 1 and "it is a pipe (FIFO), not a file; this output must be a regular file" in \
        proc.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_pictures_reach_a_pipe_and_a_device(tmp_path):
    """matplotlib's PNG writer seeks in its file, which a pipe cannot: the confusion matrix and the reliability
    diagram are drawn in memory and written straight (fer-evaluate --confusion, fer-calibrate --diagram)."""
    from fercore.calibration import reliability, save_reliability_png
    from fercore.metrics import save_confusion_png

    rng = np.random.default_rng(0)
    rel = reliability(rng.dirichlet(np.ones(3), 50), rng.integers(0, 3, 50))
    draw = {"confusion": lambda path: save_confusion_png([[3, 1], [0, 4]], ["a", "b"], path),
            "diagram": lambda path: save_reliability_png(rel, rel, path, title="t")}
    for name, save in draw.items():
        fifo = tmp_path / f"{name}.png"
        reader, got = fifo_with_reader(fifo)
        save(fifo)
        reader.join(10)
        assert got and got[0][:8] == b"\x89PNG\r\n\x1a\n" and stat.S_ISFIFO(os.stat(fifo).st_mode)
        save(tmp_path / f"{name}.svg")  # a file still gets the format its suffix names
        assert b"<svg" in (tmp_path / f"{name}.svg").read_bytes()[:500]
        if os.geteuid() == 0:
            save(_char_device(tmp_path / f"{name}-null.png"))

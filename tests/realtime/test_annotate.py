import csv
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fercore.atomic import atomic_path
from realtime.commands import annotate as annotate_module
from realtime import video_io
from realtime.commands.annotate import main
from realtime.results import csv_columns
from realtime.video_io import VideoReader, video_writer
from fs_faults import DroppingWriter, contents, full_disk, png_header, readonly_dir

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def annotate(*args: str) -> int:
    return main([*map(str, args), "--no-progress"])


@pytest.mark.slow
def test_a_video_keeps_its_frame_count_size_and_rate(tiny_checkpoint, media, tmp_path, check_document):
    src = media / "group_pan.mp4"
    out, js, cs = tmp_path / "out.mp4", tmp_path / "r.json", tmp_path / "r.csv"
    assert annotate(src, "-o", out, "--json", js, "--csv", cs, "--checkpoint", tiny_checkpoint) == 0
    with VideoReader(src) as a, VideoReader(out) as b:
        assert b.info == a.info  # 640x480, 25 fps, 150 frames
        assert sum(1 for _ in b) == 150
    doc = json.loads(js.read_text())
    check_document(doc, "video")
    assert doc["video"] == {"width": 640, "height": 480, "fps": 25.0, "frame_count": 150}
    assert doc["summary"]["frames_with_faces"] >= 140
    assert len(doc["summary"]["tracks"]) >= 6  # three group photos pass by
    rows = list(csv.DictReader(cs.open()))
    assert list(rows[0]) == csv_columns(doc["classes"])
    assert len(rows) == doc["summary"]["faces"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "r.csv", "r.json"]


def test_an_annotated_frame_shows_the_overlay(tiny_checkpoint, media, tmp_path):
    clip = tmp_path / "clip.mp4"
    with VideoReader(media / "video" / "short_hamilton_clip.mp4") as r, video_writer(clip, r.info.fps, (640, 360)) as w:
        for _, frame in zip(range(12), r):
            w.write(frame)
    out = tmp_path / "out.mp4"
    assert annotate(clip, "-o", out, "--json", tmp_path / "r.json", "--checkpoint", tiny_checkpoint) == 0
    with VideoReader(clip) as a, VideoReader(out) as b:
        assert b.info.fps == pytest.approx(29.97, abs=0.01) and b.info.frame_count == 12
        raw, drawn = list(a)[-1], list(b)[-1]
    face = json.loads((tmp_path / "r.json").read_text())["frames"][-1]["faces"][0]
    x0, y0, x1, y1 = face["box"]
    diff = np.abs(drawn.astype(int) - raw).sum(axis=2)
    assert diff[y0:y0 + 2, x0:x1].mean() > 60  # the box outline, through mp4 compression
    assert diff[y1 + 5:, :].mean() < 10  # below the face, the frame is unchanged


def test_a_truncated_video_leaves_no_output_unless_asked(tiny_checkpoint, tmp_path):
    full = tmp_path / "full.avi"
    with video_writer(full, 25.0, (160, 120)) as w:
        for i in range(40):
            w.write(np.full((120, 160, 3), i * 5, np.uint8))
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # opens, announces 40 frames, decodes about half
    out = tmp_path / "out"
    out.mkdir()
    assert annotate(cut, "-o", out / "a.mp4", "--json", out / "a.json", "--checkpoint", tiny_checkpoint) == 1
    assert list(out.iterdir()) == []
    assert annotate(cut, "-o", out / "a.mp4", "--allow-short", "--checkpoint", tiny_checkpoint) == 0
    with VideoReader(out / "a.mp4") as r:
        assert 0 < r.info.frame_count < 40


def test_bad_inputs_give_a_message_and_no_output(tiny_checkpoint, media, tmp_path, capsys):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video")
    cases = {"missing.mp4": "input not found", "empty.mp4": "empty", "text.mp4": "cannot decode"}
    for name, message in cases.items():
        assert annotate(tmp_path / name, "-o", tmp_path / "out.mp4", "--checkpoint", tiny_checkpoint) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()
    assert annotate(media / "group_pan.mp4", "-o", tmp_path / "out.gif", "--checkpoint", tiny_checkpoint) == 1
    assert "cannot write this video type" in capsys.readouterr().err


@pytest.mark.parametrize("option,value", [("--smoothing", "1"), ("--margin", "-0.1"), ("--min-confidence", "2"),
                                          ("--threads", "0"), ("--backend", "tensorrt"),
                                          ("--margin", "inf"), ("--margin", "nan"), ("--threads", "1000")])
def test_bad_options_are_usage_errors(media, tmp_path, option, value, capsys):
    assert main([str(media / "group_pan.mp4"), "--json", str(tmp_path / "r.json"), option, value]) == 2
    assert option in capsys.readouterr().err


def test_refuses_to_overwrite_its_input(tiny_checkpoint, media, tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes((media / "group_pan.mp4").read_bytes())
    before = video.read_bytes()
    assert annotate(video, "-o", tmp_path / "." / "v.mp4", "--checkpoint", tiny_checkpoint) == 1
    assert "refusing" in capsys.readouterr().err
    assert video.read_bytes() == before
    assert annotate(tmp_path, "-o", tmp_path / "annotated", "--checkpoint", tiny_checkpoint) == 1
    assert "land inside" in capsys.readouterr().err


def test_a_photo_and_a_folder_of_photos(tiny_checkpoint, media, tmp_path, capsys, check_document):
    photo = media / "photos" / "bbt4.jpg"
    out = tmp_path / "one.jpg"
    assert annotate(photo, "-o", out, "--json", tmp_path / "one.json", "--checkpoint", tiny_checkpoint) == 0
    assert cv2.imread(str(out)).shape == cv2.imread(str(photo)).shape
    doc = json.loads((tmp_path / "one.json").read_text())
    check_document(doc, "images")
    assert len(doc["frames"][0]["faces"]) == 6

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    happy = cv2.imread(str(media / "photos" / "happy.jpg"))
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(happy, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "sub" / "alpha16.png"), cv2.cvtColor(happy, cv2.COLOR_BGR2BGRA).astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "blank.jpg"), np.zeros((100, 100, 3), np.uint8))  # no face
    (folder / "broken.jpg").write_bytes((media / "photos" / "sad.jpg").read_bytes()[:200])
    (folder / "notes.txt").write_text("ignored")
    assert annotate(folder, "-o", tmp_path / "out", "--json", tmp_path / "all.json", "--csv", tmp_path / "all.csv",
                    "--checkpoint", tiny_checkpoint) == 1  # one photo could not be read
    assert "broken.jpg" in capsys.readouterr().err
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["blank.jpg", "gray.png", "sub/alpha16.png"]
    doc = json.loads((tmp_path / "all.json").read_text())
    check_document(doc, "images")
    assert [len(fr["faces"]) for fr in doc["frames"]] == [0, 1, 1]
    assert [s["source"].endswith("broken.jpg") for s in doc["skipped"]] == [True]
    assert doc["ignored"] == [{"source": str(folder / "notes.txt"), "reason": "not a photo"}]


def test_the_command_line_reports_a_missing_model_without_a_traceback(media, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "realtime.commands.annotate", str(media / "photos" / "sad.jpg"),
                           "-o", str(tmp_path / "x.jpg"), "--checkpoint", str(tmp_path / "none.pt")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "error: checkpoint not found" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.jpg").exists()


def test_a_sample_photo_is_annotated(tiny_checkpoint, sample_media, tmp_path, check_document):
    """On the photo that ships in samples/, so it runs without ../shared."""
    src = sample_media / "photos" / "grace_hopper.jpg"
    out, js = tmp_path / "annotated.jpg", tmp_path / "r.json"
    assert annotate(src, "-o", out, "--json", js, "--checkpoint", tiny_checkpoint) == 0
    doc = json.loads(js.read_text())
    check_document(doc, "images")
    assert len(doc["frames"]) == 1 and len(doc["frames"][0]["faces"]) == 1
    raw, drawn = cv2.imread(str(src)), cv2.imread(str(out))
    assert drawn.shape == raw.shape
    x0, y0, x1, y1 = doc["frames"][0]["faces"][0]["box"]
    diff = np.abs(drawn.astype(int) - raw).sum(axis=2)
    assert diff[y0:y0 + 2, x0:x1].mean() > 60  # the box outline


# --- faults, checked up front, kept when they come late ----------------------------------------------
def run_annotate(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime.commands.annotate", *map(str, args), "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(stderr: str) -> str:
    """The command's single 'error:' line (and no traceback)."""
    assert "Traceback" not in stderr, stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.slow
def test_the_command_on_a_full_disk_fails_and_leaves_no_video_that_looks_complete(tiny_checkpoint, sample_media,
                                                                                  tmp_path):
    """The annotated clip is about 470 KB; 32 KB are left. It used to exit 0 with a file of no readable frame."""
    with full_disk(tmp_path / "full", free=32 * 1024) as disk:
        proc = run_annotate(sample_media / "portraits.mp4", "-o", disk / "out.mp4", "--checkpoint", tiny_checkpoint)
        assert proc.returncode == 1
        assert "can be read back (is the disk full?" in one_error_line(proc.stderr)
        assert "wrote" not in proc.stdout
        assert contents(disk) == []
    with full_disk(tmp_path / "full2", free=0) as disk:  # results files alone: found full before the work
        proc = run_annotate(sample_media / "photos" / "astronaut.jpg", "--json", disk / "r.json", "--csv",
                            disk / "r.csv", "--checkpoint", tiny_checkpoint)
        assert proc.returncode == 1 and "r.json: the disk is full" in one_error_line(proc.stderr)
        assert contents(disk) == []


def test_a_video_that_does_not_read_back_is_an_error_and_the_results_are_kept(tiny_checkpoint, sample_media,
                                                                             tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(video_io.cv2, "VideoWriter", DroppingWriter)  # a full disk: OpenCV says nothing
    out, js = tmp_path / "out.mp4", tmp_path / "r.json"
    assert annotate(sample_media / "portraits.mp4", "-o", out, "--json", js, "--checkpoint", tiny_checkpoint) == 1
    assert "writing " + str(out) + " failed: 3 of its 50 frames can be read back" in capsys.readouterr().err
    assert contents(tmp_path) == ["r.json"]
    assert len(json.loads(js.read_text())["frames"]) == 50


def test_a_results_file_that_fails_at_the_end_keeps_the_video(tiny_checkpoint, sample_media, tmp_path, monkeypatch,
                                                              capsys):
    def full(path, *args):
        with atomic_path(path) as tmp:
            tmp.write_text("{")
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(annotate_module, "write_json", full)
    out = tmp_path / "out.mp4"
    assert annotate(sample_media / "portraits.mp4", "-o", out, "--json", tmp_path / "r.json", "--csv",
                    tmp_path / "r.csv", "--checkpoint", tiny_checkpoint) == 1
    captured = capsys.readouterr()
    assert f"error: cannot write {tmp_path / 'r.json'}: the disk is full" in captured.err
    assert f"wrote {out} (50 frames" in captured.out
    assert contents(tmp_path) == ["out.mp4", "r.csv"]
    with VideoReader(out) as r:
        assert sum(1 for _ in r) == 50


def test_outputs_are_checked_before_the_work(sample_media, tmp_path, capsys):
    """Each is refused before the model loads (the checkpoint named does not exist)."""
    video, photo = sample_media / "portraits.mp4", sample_media / "photos" / "astronaut.jpg"
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "dir.mp4").mkdir()
    cases = [((video, "--json", tmp_path / "r.x", "--csv", tmp_path / "r.x"), "--json and --csv name the same file"),
             ((video, "-o", tmp_path / "a.mp4", "--json", tmp_path / "a.mp4"), "-o and --json name the same file"),
             ((video, "-o", tmp_path / "dir.mp4"), "dir.mp4: it is a folder"),
             ((photo, "--json", tmp_path / "dir.json"), "dir.json: it is a folder"),
             ((video, "-o", tmp_path / "out.gif"), "cannot write this video type"),
             ((photo, "-o", tmp_path / "out.mp4"), "the output of a photo must be a photo")]
    with readonly_dir(tmp_path / "ro") as ro:
        cases.append(((photo, "--csv", ro / "r.csv"), "r.csv: (the folder is on a read-only file system|permission)"))
        for args, message in cases:
            assert annotate(*args, "--checkpoint", tmp_path / "missing.pt") == 1
            err = capsys.readouterr().err
            assert re.search(message, err) and "checkpoint" not in err, (args, err)
        assert contents(ro) == []
    assert contents(tmp_path) == ["dir.json", "dir.mp4", "ro"]


def gif(path, size=(101, 57), frames=5):
    from PIL import Image

    images = [Image.fromarray(np.full((size[1], size[0], 3), 40 * i, np.uint8)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    return path


def test_a_gif_is_a_video_and_odd_sizes_are_padded_and_said(tiny_checkpoint, tmp_path, capsys):
    src = gif(tmp_path / "anim.gif")  # 101x57, 5 frames: OpenCV reads a GIF as a video
    out, js = tmp_path / "out.mp4", tmp_path / "r.json"
    assert annotate(src, "-o", out, "--json", js, "--checkpoint", tiny_checkpoint) == 0
    assert ("wrote {} (5 frames, 101x57, 25 fps; padded from 101x57 to 102x58 with black on the right and bottom "
            "(the video encoders need even sizes))".format(out)) in capsys.readouterr().out
    with VideoReader(out) as r:
        assert (r.info.width, r.info.height, r.info.frame_count) == (102, 58, 5)
    video = json.loads(js.read_text())["video"]
    assert (video["width"], video["height"]) == (101, 57)  # the input's: the boxes' coordinates


def test_a_folder_lists_gifs_other_files_and_broken_links(tiny_checkpoint, sample_media, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(sample_media / "photos" / "astronaut.jpg", folder / "a.jpg")
    gif(folder / "anim.gif")
    (folder / "notes.txt").write_text("x")
    (folder / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    js = tmp_path / "r.json"
    assert annotate(folder, "-o", tmp_path / "out", "--json", js, "--checkpoint", tiny_checkpoint) == 1
    err = capsys.readouterr().err
    assert "gone.jpg is a broken link" in err
    assert ("note: 2 files that are not photos were left out: anim.gif (a GIF is read as a video: annotate it on "
            "its own), notes.txt (not a photo)") in err
    doc = json.loads(js.read_text())
    assert [Path(s["source"]).name for s in doc["skipped"]] == ["gone.jpg"]
    assert [Path(i["source"]).name for i in doc["ignored"]] == ["anim.gif", "notes.txt"]
    assert contents(tmp_path / "out") == ["a.jpg"]


def test_a_huge_photo_is_refused_with_a_message(tiny_checkpoint, tmp_path, capsys):

    (tmp_path / "huge.png").write_bytes(png_header(30000, 30000))
    assert annotate(tmp_path / "huge.png", "-o", tmp_path / "out.png", "--checkpoint", tiny_checkpoint) == 1
    assert "more than the 150 megapixels this app reads; downscale it first" in capsys.readouterr().err
    assert contents(tmp_path) == ["huge.png"]


@pytest.mark.slow
def test_names_that_are_not_utf8(tiny_checkpoint, sample_media, tmp_path):
    """Photos of any name are annotated; a video OpenCV would have to open by such a name is refused (it used to
    crash with exit 139)."""
    odd = os.fsdecode(b"caf\xe9")
    folder = tmp_path / odd
    folder.mkdir()
    shutil.copy(sample_media / "photos" / "astronaut.jpg", folder / f"{odd}.jpg")
    proc = run_annotate(folder, "-o", tmp_path / "out", "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv",
                        "--checkpoint", tiny_checkpoint)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / f"{odd}.jpg").is_file()
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["frames"][0]["source"].endswith("caf\\xe9/caf\\xe9.jpg")
    assert "caf\\xe9.jpg" in (tmp_path / "r.csv").read_text()
    proc = run_annotate(sample_media / "portraits.mp4", "-o", tmp_path / f"{odd}.mp4", "--checkpoint", tiny_checkpoint)
    assert proc.returncode == 1 and "not valid UTF-8" in one_error_line(proc.stderr)


def long_clip(sample_media, path, repeat=16):
    with VideoReader(sample_media / "portraits.mp4") as r:
        frames = list(r)
    with video_writer(path, 25.0, (frames[0].shape[1], frames[0].shape[0])) as w:
        for _ in range(repeat):
            for f in frames:
                w.write(f)
    return path


@pytest.mark.parametrize("signum", [pytest.param(signal.SIGTERM, marks=pytest.mark.slow), signal.SIGHUP])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(tiny_checkpoint, sample_media, tmp_path, signum):
    clip = long_clip(sample_media, tmp_path / "clip.mp4")  # 800 frames: seconds of work
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "realtime.commands.annotate", str(clip), "-o", str(out / "a.mp4"),
                             "--json", str(out / "a.json"), "--no-progress", "--threads", "1",
                             "--checkpoint", str(tiny_checkpoint)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    def writing() -> bool:  # frames are landing in the temporary video: the work (and its handlers) has begun
        return any(p.stat().st_size > 20_000 for p in out.glob(".a.*.tmp.mp4"))
    while not writing() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert contents(out) == []

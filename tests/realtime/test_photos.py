"""realtime.photos: any path (even one that is not UTF-8), huge images refused before decoding, what a folder holds
besides photos listed (GIFs are videos, broken links are photos that cannot be read), full disks reported."""
import errno
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fercore.atomic import OutputError
from realtime import photos
from realtime.photos import ImageError, list_folder, read_image, write_image
from fs_faults import contents, png_header

ROOT = Path(__file__).resolve().parents[2]


def test_paths_that_are_not_utf8_are_read_written_or_refused_never_a_crash(tmp_path):
    """OpenCV's own file functions crash the process (exit 139) on such paths, hence the separate process."""
    script = r"""
import os, sys
from pathlib import Path
import numpy as np
from realtime.photos import read_image, write_image
from realtime.video_io import CaptureError, VideoError, VideoReader, open_source, video_writer
d = Path(os.fsdecode(sys.argv[1].encode() + b"/caf\xe9"))
d.mkdir()
write_image(d / "in.png", np.full((20, 30, 3), 200, np.uint8))
print("photo", read_image(d / "in.png").shape)
(d / "clip.mp4").write_bytes(b"not checked: refused first")
for what, call in (("reader", lambda: VideoReader(d / "clip.mp4")),
                   ("writer", lambda: video_writer(d / "out.mp4", 25.0, (30, 20)).__enter__()),
                   ("source", lambda: open_source(os.fspath(d / "clip.mp4"))),
                   ("camera", lambda: open_source(-1))):
    try:
        call()
        print(what, "opened")
    except (VideoError, CaptureError) as exc:
        print(what, "refused:", exc)
"""
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["photo"] == "(20, 30, 3)"
    for what in ("reader", "writer", "source"):
        assert lines[what].startswith("refused:") and "caf\\xe9" in lines[what] and "not valid UTF-8" in lines[what]
    assert lines["camera"] == "refused: no camera -1: camera numbers start at 0"


def test_a_huge_image_is_refused_from_its_header(tmp_path, monkeypatch):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header(30000, 30000))  # a 876 KB file of this size crashed MediaPipe
    with pytest.raises(ImageError, match="is 900 megapixels, more than the 150 megapixels this app reads; downscale it first"):
        read_image(huge)
    big = tmp_path / "big.png"
    big.write_bytes(png_header(20000, 8000))  # under Pillow's own limit: the size is told
    with pytest.raises(ImageError, match=r"20000x8000 pixels \(160 megapixels\)"):
        read_image(big)
    cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((200, 300, 3), np.uint8))
    monkeypatch.setattr(photos, "MAX_PIXELS", 300 * 200 - 1)
    with pytest.raises(ImageError, match="300x200 pixels"):
        read_image(tmp_path / "ok.png")


def test_a_folder_lists_what_is_not_a_photo_and_keeps_broken_links(tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "anim.gif").write_bytes(b"GIF89a")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".half.123.abc.tmp.jpg").write_bytes(b"")  # hidden: a writer's temporary file
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    found, others = list_folder(tmp_path)
    assert [p.name for p in found] == ["a.jpg", "gone.jpg"]
    assert [(Path(o["source"]).name, o["reason"]) for o in others] == [
        ("anim.gif", "a GIF is read as a video: annotate it on its own"), ("notes.txt", "not a photo")]
    with pytest.raises(ImageError, match="gone.jpg is a broken link"):
        read_image(tmp_path / "gone.jpg")


def test_writing_a_photo_on_a_full_disk_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(OutputError, match="the disk is full"):
        write_image(tmp_path / "out.jpg", np.zeros((8, 8, 3), np.uint8))
    assert contents(tmp_path) == []
    with pytest.raises(ImageError, match="cannot encode"):
        write_image(tmp_path / "out.xyz", np.zeros((8, 8, 3), np.uint8))


def test_exif_rotation_is_applied(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").shape == (40, 20, 3)

import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from realtime import cli
from realtime.annotate import main
from realtime.results import csv_columns
from realtime.video_io import VideoReader, video_writer

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def annotate(*args: str) -> int:
    return cli.run(main, [*map(str, args), "--no-progress"])


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
                                          ("--threads", "0"), ("--backend", "tensorrt")])
def test_bad_options_are_usage_errors(media, tmp_path, option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(media / "group_pan.mp4"), "--json", str(tmp_path / "r.json"), option, value])
    assert exit_info.value.code == 2 and option in capsys.readouterr().err


def test_refuses_to_overwrite_its_input(tiny_checkpoint, media, tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes((media / "group_pan.mp4").read_bytes())
    before = video.read_bytes()
    assert annotate(video, "-o", tmp_path / "." / "v.mp4", "--checkpoint", tiny_checkpoint) == 1
    assert "refusing" in capsys.readouterr().err
    assert video.read_bytes() == before
    assert annotate(tmp_path, "-o", tmp_path / "annotated", "--checkpoint", tiny_checkpoint) == 1
    assert "inside the input" in capsys.readouterr().err


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
    assert [len(fr["faces"]) for fr in doc["frames"]] == [0, 2, 2]
    assert [s["source"].endswith("broken.jpg") for s in doc["skipped"]] == [True]


def test_the_command_line_reports_a_missing_model_without_a_traceback(media, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "realtime.annotate", str(media / "photos" / "sad.jpg"),
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

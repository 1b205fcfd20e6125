"""The emotion timeline and report (realtime.report, fer-report, fer-annotate --report): drawn from a results
file without running the model, self-contained, and true to the results."""
import base64
import csv
import json
import re
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fercore.classes import EMOTIONS
from fercore.paths import ROOT
from realtime import report
from realtime.commands.annotate import main as annotate_main
from realtime.commands.report import main as report_main
from realtime.results import SCHEMA, VERSION
from realtime.tracking import Tracker

FPS = 10.0


def test_each_frames_reading_is_recovered_from_the_evidence():
    """Undoing the tracker's update gives back what each frame read, from the 4-decimal values of a file."""
    rng = np.random.default_rng(1)
    smoothing = 0.6
    tracker = Tracker(smoothing=smoothing)
    readings, evidence, weights = [], [], []
    for i in range(60):
        p = rng.dirichlet(np.ones(len(EMOTIONS)) * 0.5)
        w = float(p.max()) * (0.1 if i % 7 in (3, 4) else 1.0)  # some bad views, as the pipeline weighs them
        track = tracker.update([(10, 10, 60, 60)], p[None], np.array([w]))[0]
        readings.append(p)
        evidence.append(np.round(track.probs, 4))
        weights.append(round(w, 4))
    got = report.frame_readings(np.array(evidence), np.array(weights), smoothing)
    known = ~np.isnan(got).any(axis=1)
    assert known.mean() > 0.9
    assert np.abs(got[known] - np.array(readings)[known]).max() < 0.05
    assert np.allclose(got[0], evidence[0])


def made_up_results(input_name: str = "missing.mp4") -> dict:
    """A video of 40 frames at 10 fps and a cut at frame 30. Track 1 (frames 0-29): happy, then uncertain
    (10-14), held (15-19), sad (20-29); track 2 after the cut; track 3 seen in one frame (a brief false face)."""
    def face(track, label, top, held=False, weight=0.9):
        probs = {c: 0.02 for c in EMOTIONS}
        probs[top] = round(1 - 0.02 * (len(EMOTIONS) - 1), 4)
        return {"track": track, "box": [10, 10, 40, 40], "score": 0.9, "label": label,
                "reason": None if label else "turned away", "held": held, "weight": weight,
                "confidence": probs[top], "probabilities": probs}
    frames = []
    for i in range(40):
        faces = []
        if i < 10:
            faces.append(face(1, "happy", "happy"))
        elif i < 15:
            faces.append(face(1, None, "happy", weight=0.09))
        elif i < 20:
            faces.append(face(1, "happy", "happy", held=True, weight=0.09))
        elif i < 30:
            faces.append(face(1, "sad", "sad"))
        else:
            faces.append(face(2, "angry", "angry"))
        if i == 5:
            faces.append(face(3, None, "fear", weight=0.05))
        frames.append({"frame": i, "time": i / FPS, "source": None, "cut": i == 30, "faces": faces})
    summary = {"frames": 40, "tracks": {
        "1": {"dominant": "happy", "emotions": {**{c: 0.0 for c in EMOTIONS}, "happy": 0.6, "sad": 0.4}},
        "2": {"dominant": "angry", "emotions": {**{c: 0.0 for c in EMOTIONS}, "angry": 1.0}},
        "3": {"dominant": None, "emotions": {c: 0.0 for c in EMOTIONS}}}}
    return {"schema": SCHEMA, "version": VERSION, "classes": list(EMOTIONS), "input": input_name, "kind": "video",
            "video": {"width": 64, "height": 48, "fps": FPS, "frame_count": 40},
            "settings": {"checkpoint": "tiny.pt", "smoothing": 0.6}, "frames": frames, "summary": summary}


def test_the_report_is_drawn_from_a_results_file_and_opens_offline(tmp_path, capsys):
    results = tmp_path / "r.json"
    results.write_text(json.dumps(made_up_results()))
    out = tmp_path / "report"
    assert report_main([str(results), "-o", str(out)]) == 0
    assert "missing.mp4 was not found" in capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["index.html", "overview.png", "summary.csv", "track_1.png", "track_2.png"]  # no thumbnails
    rows = {r["track"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert list(rows) == ["1", "2", "3"]  # the brief track in the table, without a timeline
    assert float(rows["1"]["seen_s"]) == pytest.approx(3.0) and float(rows["2"]["seen_s"]) == pytest.approx(1.0)
    assert float(rows["1"]["uncertain"]) == float(rows["1"]["held"]) == pytest.approx(5 / 30, abs=1e-4)
    assert float(rows["1"]["happy"]) == 0.6 and rows["3"]["dominant"] == ""

    page = (out / "index.html").read_text()
    assert "<script" not in page and not re.search(r"(src|href)=['\"]?(https?:|//|[^#'\"d])", page)
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 3  # the overview and the two timelines, inlined
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(images[1]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[1] == 1000 and (decoded == cv2.imread(str(out / "track_1.png"))).all()
    assert "was not found" in page and "<details><summary class=muted>1 track seen for less than 0.5 s" in page


def test_a_timeline_shows_cuts_uncertain_and_held_stretches():
    doc = made_up_results()
    series = report.track_series(doc)
    fig = report.timeline_figure(series[1], doc["classes"], report.cut_times(doc) + [3.9], 1 / FPS)
    ax = fig.axes[0]
    spans = [(round(p.get_x(), 3), round(p.get_x() + p.get_width(), 3), p.get_hatch()) for p in ax.patches]
    assert (0.95, 1.45, None) in spans and (1.45, 1.95, "///") in spans  # uncertain 10-14, held 15-19
    cuts = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]
    assert cuts == [pytest.approx(2.95)]  # the cut at frame 30, at its frame's edge; 3.9 s is off the axis
    assert [r[2:] for r in report.label_runs(series[1])] == [("happy", False), (None, False), ("happy", True),
                                                            ("sad", False)]


def test_a_video_that_is_not_the_one_described_gives_no_thumbnails(tmp_path, sample_media):
    results = tmp_path / "r.json"
    results.write_text(json.dumps(made_up_results()))
    done = report.write_report(results, tmp_path / "out", video=sample_media / "portraits.mp4")
    assert done.notes and "not the 64x48 video of 40 frames" in done.notes[0]
    assert not list((tmp_path / "out").glob("face_*.jpg"))


def test_photos_and_other_files_are_refused_in_words(tmp_path, capsys):
    doc = {**made_up_results(), "kind": "images"}
    (tmp_path / "photos.json").write_text(json.dumps(doc))
    (tmp_path / "other.json").write_text("{}")
    for name, message in (("photos.json", "holds photos"), ("other.json", "is not a results file"),
                          ("missing.json", "not found")):
        assert report_main([str(tmp_path / name), "-o", str(tmp_path / "out")]) == 1
        assert message in capsys.readouterr().err


def _set(path: str, value):
    """A change to a results document: the field at ``path`` ('frames.3.faces.0.box') set to ``value``, or
    removed when ``value`` is _DROP."""
    def change(doc: dict) -> dict:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DROP:
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return doc
    return change


_DROP = object()


@pytest.mark.parametrize("change, names", [
    (_set("frames", _DROP), "frames"), (_set("classes", _DROP), "classes"), (_set("classes", 7), "classes"),
    (_set("classes", ["happy", 3]), "classes"), (_set("frames.3", "x"), "frame 3"),
    (_set("frames.3.time", _DROP), "frame 3"), (_set("frames.3.faces", None), "frame 3"),
    (_set("frames.3.faces.0.probabilities", _DROP), "frame 3"),
    (_set("frames.3.faces.0.probabilities.sad", "high"), "frame 3"),
    (_set("frames.3.faces.0.probabilities.sad", float("nan")), "frame 3"),
    (_set("frames.3.faces.0.track", "one"), "frame 3"), (_set("frames.3.faces.0.box", [1, 2, 3]), "frame 3"),
    (_set("frames.3.faces.0.box", [1.5, 2, 30, 40]), "frame 3"), (_set("frames.3.faces.0.label", "joy"), "frame 3"),
    (_set("frames.3.faces.0.weight", "x"), "frame 3"), (_set("video.fps", "fast"), "fps"),
    (_set("video.fps", -25), "fps"), (_set("video", [64, 48]), "video"), (_set("settings.smoothing", 1), "smoothing"),
    (_set("input", 5), "input"), (_set("summary.tracks.1.emotions.happy", "most"), "summary"),
    (_set("summary.tracks", [1]), "summary"),
])
def test_a_results_file_the_report_cannot_draw_is_refused_in_one_line(change, names, tmp_path, capsys):
    """A hand-edited or foreign results file with the right schema: each field the report reads, of the wrong
    type or missing, is named in one error line (no traceback) and nothing is written."""
    results = tmp_path / "r.json"
    results.write_text(json.dumps(change(made_up_results())))
    assert report_main([str(results), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "cannot draw" in err and names in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_termination_signal_while_writing_leaves_no_temporary_file(signum, tmp_path):
    """SIGTERM or SIGHUP while a file of the report is half written: its temporary file is deleted and the exit
    status is 130, as for Ctrl-C (killed on the spot, it was left behind)."""
    results = tmp_path / "r.json"
    results.write_text(json.dumps(made_up_results()))
    out = tmp_path / "out"
    script = f"""
import os, sys, time
from realtime import report
from realtime.commands.report import main

def write_csv(path, rows):  # the signal comes while the summary is being written
    with report.atomic_path(path) as tmp:
        tmp.write_text("track,")
        os.kill(os.getpid(), {int(signum)})
        time.sleep(30)

report.write_csv = write_csv
sys.exit(main([{str(results)!r}, "-o", {str(out)!r}]))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))  # not ignored, as under nohup
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "interrupted"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")] and not (out / "index.html").exists()


@pytest.mark.slow
def test_annotate_writes_the_report_with_each_tracks_clearest_face(tiny_checkpoint, sample_media, tmp_path):
    out = tmp_path / "report"
    assert annotate_main([str(sample_media / "portraits.mp4"), "--report", str(out), "--json",
                          str(tmp_path / "r.json"), "--checkpoint", str(tiny_checkpoint), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    series = report.track_series(doc)
    long = [t for t, s in series.items() if len(s.times) / doc["video"]["fps"] >= report.MIN_SECONDS]
    assert long and sorted(p.name for p in out.glob("face_*.jpg")) == sorted(f"face_{t}.jpg" for t in long)
    for t in long:
        s = series[t]
        x0, y0, x1, y1 = s.boxes[s.clearest()]
        face = cv2.imread(str(out / f"face_{t}.jpg"))
        assert face.shape[0] == report.THUMB_HEIGHT
        assert face.shape[1] / face.shape[0] == pytest.approx((x1 - x0) / (y1 - y0), abs=0.15)
    page = (out / "index.html").read_text()
    assert len(re.findall(r"src='data:image/jpeg;base64,", page)) == 2 * len(long)  # table and section


def test_annotate_refuses_a_report_for_photos(tiny_checkpoint, sample_media, tmp_path, capsys):
    photo = sample_media / "photos" / "astronaut.jpg"
    assert annotate_main([str(photo), "--report", str(tmp_path / "r"), "--checkpoint", str(tiny_checkpoint)]) == 1
    assert "photos have none" in capsys.readouterr().err

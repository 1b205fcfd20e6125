import csv
import json

import pytest

from fercore.classes import EMOTIONS
from realtime.results import (SCHEMA, FaceResult, FrameResult, JsonlLog, csv_columns, format_summary,
                              header, summarize, write_csv, write_json)

CLASSES = list(EMOTIONS)


def face(track: int, label: str, box=(10, 20, 60, 80)) -> FaceResult:
    probs = {c: (0.7 if c == label else 0.05) for c in CLASSES}
    return FaceResult(track, box, 0.9, label, 0.7, probs)


def frames() -> list[FrameResult]:
    return [FrameResult(0, 0.0, [face(1, "happy"), face(2, "sad", (100, 20, 150, 80))]),
            FrameResult(1, 0.04, []),
            FrameResult(2, 0.08, [face(1, "happy")]),
            FrameResult(3, 0.12, [face(1, "neutral")])]


def test_summary_gives_the_share_of_each_emotion_per_track():
    s = summarize(frames(), CLASSES)
    assert s["frames"] == 4 and s["frames_with_faces"] == 3 and s["faces"] == 4
    assert s["emotions"]["happy"] == 0.5 and s["emotions"]["sad"] == 0.25
    t1 = s["tracks"]["1"]
    assert t1["frames"] == 3 and t1["first_frame"] == 0 and t1["last_frame"] == 3
    assert t1["emotions"]["happy"] == pytest.approx(2 / 3, abs=1e-4) and t1["dominant"] == "happy"
    assert s["tracks"]["2"]["emotions"]["sad"] == 1.0
    assert "tracks" not in summarize(frames(), CLASSES, per_track=False)
    text = format_summary(s)
    assert "4 faces: 4 labelled (happy 2, sad 1, neutral 1)" in text and "track 2: frames 0-0, 1 view: " in text


def test_json_follows_the_schema(tmp_path, check_document):
    path = tmp_path / "r.json"
    head = header(CLASSES, input="x.mp4", kind="video", settings={
        "checkpoint": "c.pt", "backend": "onnx", "detector": "short", "min_confidence": 0.5, "margin": 0.15,
        "smoothing": 0.6}, video={"width": 640, "height": 480, "fps": 25.0, "frame_count": 4})
    write_json(path, head, frames(), summarize(frames(), CLASSES))
    check_document(json.loads(path.read_text()), "video")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_csv_has_one_row_per_face(tmp_path):
    path = tmp_path / "r.csv"
    write_csv(path, frames(), CLASSES)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == csv_columns(CLASSES)
    assert [(r["frame"], r["track"], r["label"]) for r in rows] == [
        ("0", "1", "happy"), ("0", "2", "sad"), ("2", "1", "happy"), ("3", "1", "neutral")]
    assert rows[1]["x0"] == "100" and float(rows[0]["p_happy"]) == 0.7


def test_jsonl_log_has_a_header_then_a_line_per_frame(tmp_path, check_face):
    path = tmp_path / "log.jsonl"
    log = JsonlLog(path, header(CLASSES, input="0", kind="stream"))
    for fr in frames():
        log.write(fr)
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["schema"] == SCHEMA and lines[0]["classes"] == CLASSES
    assert [line["frame"] for line in lines[1:]] == [0, 1, 2, 3]
    for f in lines[1]["faces"]:
        check_face(f)


def test_uncertain_faces_have_no_label_a_reason_and_are_counted_apart(tmp_path, check_document):
    probs = {c: (0.3 if c == "sad" else 0.7 / 6) for c in CLASSES}
    unsure = FaceResult(3, (200, 20, 250, 80), 0.8, None, 0.3, probs, "turned away")
    fr = frames()
    fr[1].faces.append(unsure)
    fr[2].faces.append(unsure)
    s = summarize(fr, CLASSES)
    assert s["faces"] == 6 and s["uncertain"] == pytest.approx(2 / 6, abs=1e-4)
    assert s["emotions"]["happy"] == 0.5 and sum(s["emotions"].values()) == pytest.approx(1)  # of the labelled
    assert s["tracks"]["3"] == {"frames": 2, "first_frame": 1, "last_frame": 2, "dominant": None, "uncertain": 1.0,
                                "emotions": {c: 0.0 for c in CLASSES}, "labelled": 0, "label_counts": {},
                                "uncertain_counts": {"turned away": 2}}
    assert "6 faces: 4 labelled" in format_summary(s) and ", 2 uncertain (turned away 2)" in format_summary(s)
    write_json(tmp_path / "r.json", header(CLASSES, input="x.mp4", kind="video", settings={
        "checkpoint": "c", "backend": "onnx", "detector": "short", "min_confidence": 0.5, "margin": 0.15,
        "smoothing": 0.6}, video={"frame_count": 4}), fr, s)
    doc = json.loads((tmp_path / "r.json").read_text())
    check_document(doc, "video")
    face = doc["frames"][1]["faces"][0]
    assert face["label"] is None and face["reason"] == "turned away" and face["confidence"] == 0.3
    write_csv(tmp_path / "r.csv", fr, CLASSES)
    rows = [r for r in csv.DictReader((tmp_path / "r.csv").open()) if r["track"] == "3"]
    assert [(r["label"], r["reason"]) for r in rows] == [("", "turned away")] * 2


def test_cuts_held_labels_and_weights_are_written_after_the_version_2_fields(tmp_path, check_document):
    held = FaceResult(1, (10, 20, 60, 80), 0.9, "happy", 0.7, face(1, "happy").probabilities, held=True,
                      weight=0.07)
    fr = [FrameResult(0, 0.0, [face(1, "happy")]), FrameResult(1, 0.04, [held]),
          FrameResult(2, 0.08, [face(4, "sad")], cut=True)]
    s = summarize(fr, CLASSES)
    write_json(tmp_path / "r.json", header(CLASSES, input="x.mp4", kind="video", settings={
        "checkpoint": "c", "backend": "onnx", "detector": "short", "min_confidence": 0.5, "margin": 0.15,
        "smoothing": 0.6}, video={"frame_count": 3}), fr, s)
    doc = json.loads((tmp_path / "r.json").read_text())
    check_document(doc, "video")
    assert [f["cut"] for f in doc["frames"]] == [False, False, True]
    assert doc["frames"][1]["faces"][0] == {**face(1, "happy").to_dict(), "held": True, "weight": 0.07}
    assert doc["frames"][0]["faces"][0]["held"] is False and doc["frames"][0]["faces"][0]["weight"] == 1.0
    write_csv(tmp_path / "r.csv", fr, CLASSES)
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].split(",")[:-3] == csv_columns(CLASSES)[:-3]  # the version 2 columns, in their places
    assert lines[0].split(",")[-3:] == ["cut", "held", "weight"]
    assert [line.split(",")[-3:] for line in lines[1:]] == [["0", "0", "1.0"], ["0", "1", "0.07"], ["1", "0", "1.0"]]


def test_a_tracks_shares_weigh_its_frames_as_its_evidence_does():
    """Two sharp frames read happy; three held through bad views (weight 0.05 each) read sad: the track is
    happy, 0.8 / (0.8 + 0.15) = 84% of its evidence, though most of its labelled frames say sad."""
    probs = face(1, "happy").probabilities
    fr = [FrameResult(i, i / 25, [FaceResult(1, (0, 0, 50, 50), 0.9, label, 0.7, probs, held=held, weight=w)])
          for i, (label, held, w) in enumerate([("happy", False, 0.4), ("happy", False, 0.4), ("sad", True, 0.05),
                                                ("sad", True, 0.05), ("sad", True, 0.05)])]
    t = summarize(fr, CLASSES)["tracks"]["1"]
    assert t["dominant"] == "happy" and t["emotions"]["happy"] == pytest.approx(0.8 / 0.95, abs=1e-4)
    assert summarize(fr, CLASSES)["emotions"]["sad"] == 0.6  # all faces together: each detection counts once


def test_summaries_give_counts_before_shares():
    """'11 faces: happy 100%' read as if every face were happy; the summary now says how many were labelled."""
    from realtime.results import FaceResult, FrameResult, format_summary, summarize

    def face(track, label, reason=None):
        return FaceResult(track, (0, 0, 10, 10), 0.9, label, 0.9, {"happy": 0.9, "sad": 0.1}, reason)

    frames = [FrameResult(0, 0.0, [face(1, "happy"), face(2, None, "unsure")]),
              FrameResult(1, 0.04, [face(1, "happy"), face(2, None, "turned away"), face(3, None, "unsure")])]
    summary = summarize(frames, ["happy", "sad"])
    assert (summary["labelled"], summary["label_counts"], summary["uncertain_counts"]) == \
        (2, {"happy": 2}, {"unsure": 2, "turned away": 1})
    text = format_summary(summary)
    assert "5 faces: 2 labelled (happy 2), 3 uncertain (unsure 2, turned away 1)" in text
    assert "track 2: frames 0-1, 2 views: 0 labelled, 2 uncertain (unsure 1, turned away 1)" in text
    assert "track 3: frames 1-1, 1 view: 0 labelled, 1 uncertain (unsure 1)" in text


def test_a_count_of_one_speaks_in_the_singular():
    from realtime.results import FaceResult, FrameResult, format_summary, summarize

    one = FaceResult(1, (0, 0, 10, 10), 0.9, "happy", 0.9, {"happy": 0.9, "sad": 0.1}, None)
    text = format_summary(summarize([FrameResult(0, None, [one])], ["happy", "sad"]), unit="photos")
    assert text.startswith("1 photo, 1 with faces; 1 face: 1 labelled (happy 1)\n  track 1: frames 0-0, 1 view: ")
    assert format_summary(summarize([FrameResult(0, 0.0, [])], ["happy", "sad"])) == "1 frame, 0 with faces; no faces"

"""The hand-labelled real faces (realtime/real_faces.json) and the scorer that runs the pipeline on them
(tools.real_footage): the set is well formed and covers what it claims; matching and counting give known numbers
on a made-up case; the whole run on ../shared/media is slow."""
import json
from pathlib import Path

import numpy as np
import pytest

from fercore.paths import ROOT
from realtime.photos import read_image
from tools import real_footage as rf
from tools.real_footage import LabelledFace, LabelledImage, Seen

FACE_BOXES = ROOT / "realtime" / "face_boxes.json"


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(rf.REAL_FACES.read_text())


def test_the_set_is_well_formed(doc):
    assert rf.problems(doc) == []
    rf.load_set()
    assert {"about", "box", "face", "emotion", "view", "blurred"} <= set(doc)
    assert "2026-12-03" in doc["about"]


def test_the_set_holds_every_photo_and_enough_video_faces():
    images = rf.load_set()
    boxes_doc = json.loads(FACE_BOXES.read_text())
    photos = {im["media"] for im in boxes_doc["images"] if "frame" not in im}
    assert photos <= {im.media for im in images if im.frame is None}
    video_faces = [f for im in images if im.frame is not None for f in im.faces if f.face]
    assert len(video_faces) >= 150
    for video in ("video/short_hamilton_clip.mp4", "video/faceapi_test_video.mp4", "group_pan.mp4"):
        assert any(im.media == video for im in images)
    hamilton = {im.frame for im in images if im.media == "video/short_hamilton_clip.mp4"}
    assert {120, 235} <= hamilton
    # a face in every scene of the Hamilton clip (cuts at 20, 82 and 211)
    assert all(any(lo <= f < hi for f in hamilton) for lo, hi in ((0, 20), (20, 82), (82, 211), (211, 275)))
    assert any(not f.face for im in images if im.key == ("video/short_hamilton_clip.mp4", 120) for f in im.faces)


def test_the_set_reuses_the_earlier_face_boxes():
    images = {im.key: im for im in rf.load_set()}
    for rec in json.loads(FACE_BOXES.read_text())["images"]:
        im = images.get((rec["media"], rec.get("frame")))
        if im is not None:
            assert {tuple(f["box"]) for f in rec["faces"]} <= {f.box for f in im.faces if f.face}, im.key


def test_the_set_matches_the_media(media):
    images = rf.load_set()
    listed = {im.media for im in images if im.frame is None}
    on_disk = {f"{folder}/{p.name}" for folder in ("photos", "group") for p in (media / folder).iterdir()}
    assert on_disk == listed
    for im in images:
        if im.frame is None:
            h, w = read_image(media / im.media).shape[:2]
            assert (w, h) == im.size, im.media


@pytest.mark.parametrize("face, wrong", [
    ({"box": [0, 0, 120, 10], "face": True, "emotion": "happy", "view": "frontal"}, "box"),
    ({"box": [0, 0, 10, 10], "face": True, "emotion": "joy", "view": "frontal"}, "emotion"),
    ({"box": [0, 0, 10, 10], "face": True, "emotion": "happy", "view": "side"}, "view"),
    ({"box": [0, 0, 10, 10], "face": False, "emotion": "happy"}, "non-face"),
    ({"box": [0, 0, 10, 10], "face": "yes"}, "face"),
])
def test_a_malformed_face_is_named(face, wrong):
    found = rf.problems({"images": [{"media": "photos/a.jpg", "size": [100, 50], "faces": [face]}]})
    assert len(found) == 1 and found[0].startswith("photos/a.jpg face 0: ") and wrong in found[0]


def test_matching_pairs_the_largest_overlaps_one_each():
    labelled = [(0, 0, 10, 10), (20, 0, 30, 10)]
    seen = [(1, 0, 11, 10), (0, 0, 10, 10), (22, 0, 32, 10), (50, 50, 60, 60)]
    assert rf.match(labelled, seen) == {0: 1, 1: 2}
    assert rf.match([(0, 0, 10, 10)], [(0, 0, 10, 4)]) == {0: 0}  # IoU 0.4: a match
    assert rf.match([(0, 0, 10, 10)], [(0, 0, 10, 3)]) == {}  # IoU 0.3: none
    assert rf.match([(0, 0, 10, 10)], [(0, 0, 10, 4), (0, 0, 10, 3)]) == {0: 0}


def face(box, emotion=None, view="frontal", blurred=False):
    return LabelledFace(box, emotion is not None, emotion, view if emotion else None, blurred)


def test_scoring_counts_a_made_up_case():
    photo = LabelledImage("photos/x.jpg", None, (100, 100), (
        face((0, 0, 20, 20), "happy"), face((30, 0, 50, 20), "sad", "three_quarter"),
        face((60, 0, 80, 20), "cant_tell", blurred=True), face((0, 30, 20, 50)),
        face((30, 30, 50, 50), "neutral", "profile")))
    frame = LabelledImage("video/v.mp4", 3, (100, 100), (face((10, 10, 40, 40), "surprise"), face((50, 50, 70, 70))))
    seen = {photo.key: [Seen((1, 1, 21, 21), "happy"), Seen((30, 0, 50, 20), "happy"), Seen((60, 0, 80, 20), "sad"),
                        Seen((0, 30, 20, 50), None), Seen((80, 80, 99, 99), "angry")],
            frame.key: [Seen((12, 12, 40, 40), None), Seen((50, 50, 70, 70), "fear")]}
    t = rf.score([photo, frame], seen)
    a = t["all"]
    assert (a.tellable, a.found, a.labelled, a.correct, a.missed) == (4, 3, 2, 1, 1)
    assert (a.coverage, a.accuracy) == (0.5, 0.5)
    assert (a.cant_tell, a.cant_tell_labelled) == (1, 1)
    assert (a.non_faces, a.non_faces_found, a.non_faces_labelled, a.unlabelled_boxes) == (2, 2, 1, 1)
    p, v = t["photos"], t["v.mp4"]
    assert (p.tellable, p.labelled, p.correct, p.non_faces_labelled, p.unlabelled_boxes) == (3, 2, 1, 0, 1)
    assert (v.tellable, v.found, v.labelled, v.non_faces_labelled) == (1, 1, 0, 1)
    assert (t["view frontal"].tellable, t["view frontal"].correct, t["view frontal"].cant_tell) == (2, 1, 1)
    assert (t["view profile"].tellable, t["view profile"].missed) == (1, 1)
    assert (t["blurred"].tellable, t["blurred"].cant_tell_labelled) == (0, 1)
    # nothing reported: every face missed, nothing labelled
    empty = rf.score([photo, frame], {})["all"]
    assert (empty.tellable, empty.found, empty.labelled, empty.coverage, empty.accuracy) == (4, 0, 0, 0.0, 0.0)


def test_a_replay_answers_what_was_recorded_and_refuses_a_new_question():
    replay = rf.Replay()
    asked = []
    for key in ("a", "b"):
        replay.at((key,))
        assert replay.answer(lambda: asked.append(key) or key.upper()) == key.upper()
    replay.recording = False
    replay.at(("b",))
    assert replay.answer(lambda: "never") == "B" and asked == ["a", "b"]
    with pytest.raises(RuntimeError, match="nothing recorded"):
        replay.answer(lambda: "a second call for b")


def test_the_detector_threshold_and_the_label_confidence_limit_are_separate_options():
    """Both were read into one attribute: --min-label-confidence 0.4 also raised the detector's threshold."""
    args = rf.get_parser().parse_args(["--min-confidence", "0.2", "--min-label-confidence", "0.4"])
    assert args.detector_min_confidence == 0.2
    assert rf.limits_from_args(args, rf.ReadabilityLimits()).min_confidence == 0.4
    args = rf.get_parser().parse_args(["--min-label-confidence", "0.4"])
    assert args.detector_min_confidence is None


@pytest.mark.slow
def test_the_default_model_is_scored_on_the_real_set(media, tmp_path):
    out = tmp_path / "report.json"
    assert rf.main(["--media", str(media), "--no-progress", "--yaw", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    images = rf.load_set()
    faces = [f for im in images for f in im.faces]
    assert len(report["faces"]) == len(faces)
    every = report["scores"]["all"]
    assert every["tellable"] == sum(f.tellable for f in faces)
    assert every["non_faces"] == sum(not f.face for f in faces)
    assert 0 < every["coverage"] <= report["label_all"]["all"]["coverage"] <= 1
    assert report["label_all"]["all"]["labelled"] == report["label_all"]["all"]["found"]
    assert report["yaw_by_view"]["frontal"]["faces"] > 50
    assert np.isfinite(report["yaw_by_view"]["frontal"]["median"])

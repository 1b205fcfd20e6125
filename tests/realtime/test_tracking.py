import numpy as np
import pytest

from realtime.tracking import Tracker, iou


def onehot(*indices: int) -> np.ndarray:
    p = np.zeros((len(indices), 7), np.float32)
    p[np.arange(len(indices)), indices] = 1.0
    return p


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 10, 10)) == 0.0


def test_a_moving_face_keeps_its_id_and_a_new_face_gets_a_new_one():
    t = Tracker()
    a = t.update([(100, 100, 200, 200)], onehot(3))
    b = t.update([(108, 104, 208, 204), (400, 100, 480, 180)], onehot(3, 0))
    assert [tr.id for tr in a] == [1]
    assert [tr.id for tr in b] == [1, 2]
    c = t.update([(400, 102, 480, 182), (115, 108, 215, 208)], onehot(0, 3))  # order of boxes changes
    assert [tr.id for tr in c] == [2, 1]


def test_crossing_faces_are_matched_by_best_overlap():
    t = Tracker()
    t.update([(0, 0, 100, 100), (60, 0, 160, 100)], onehot(0, 1))
    # Each new box overlaps both tracks; the greedy match takes the larger overlap first.
    out = t.update([(50, 0, 150, 100), (5, 0, 105, 100)], onehot(1, 0))
    assert [tr.id for tr in out] == [2, 1]


def test_a_track_survives_short_gaps_and_is_dropped_after_long_ones():
    t = Tracker(max_missed=2)
    t.update([(0, 0, 50, 50)], onehot(3))
    for _ in range(2):
        t.update([], onehot())
    assert [tr.id for tr in t.update([(2, 2, 52, 52)], onehot(3))] == [1]
    for _ in range(3):
        t.update([], onehot())
    assert t.tracks == []
    assert [tr.id for tr in t.update([(2, 2, 52, 52)], onehot(3))] == [2]
    t.reset()
    assert [tr.id for tr in t.update([(2, 2, 52, 52)], onehot(3))] == [1]


def test_probabilities_are_smoothed_per_track():
    t = Tracker(smoothing=0.75)
    box = (0, 0, 50, 50)
    t.update([box], onehot(3))
    p = t.update([box], onehot(0))[0].probs
    assert p[3] == pytest.approx(0.75) and p[0] == pytest.approx(0.25)
    # One odd frame does not flip the label; a lasting change does, after a few frames.
    assert p.argmax() == 3
    for _ in range(3):
        p = t.update([box], onehot(0))[0].probs
    assert p.argmax() == 0


def test_smoothing_can_be_turned_off_and_is_validated():
    t = Tracker(smoothing=0.0)
    t.update([(0, 0, 50, 50)], onehot(3))
    assert t.update([(0, 0, 50, 50)], onehot(0))[0].probs.argmax() == 0
    with pytest.raises(ValueError):
        Tracker(smoothing=1.0)


def test_a_scene_cut_ends_every_track_and_ids_stay_unique():
    t = Tracker()
    assert [tr.id for tr in t.update([(0, 0, 50, 50), (100, 0, 150, 50)], onehot(3, 4))] == [1, 2]
    t.end_all()
    # The same places after the cut: other people, new ids (never 1 or 2 again in this video).
    assert [tr.id for tr in t.update([(0, 0, 50, 50), (100, 0, 150, 50)], onehot(0, 0))] == [3, 4]
    assert t.update([(1, 1, 51, 51)], onehot(0))[0].probs.argmax() == 0  # nothing carried over from track 1


def test_bad_views_barely_move_the_evidence_good_ones_established():
    t = Tracker(smoothing=0.6)
    box = (0, 0, 50, 50)
    for _ in range(10):
        t.update([box], onehot(3), [0.8], [True])
    # Blurred or turned-away frames that read "sad": a tenth of the weight each.
    track = t.update([box], onehot(4), [0.08], [False])[0]
    assert track.probs.argmax() == 3 and track.probs[4] < 0.05 and track.good_share > 0.95
    for _ in range(9):
        track = t.update([box], onehot(4), [0.08], [False])[0]
    assert track.probs.argmax() == 3 and track.good_share > 0.5  # ten bad frames later: still mostly good
    for _ in range(30):
        track = t.update([box], onehot(4), [0.08], [False])[0]
    assert track.good_share < 0.5  # a long run of bad views replaces it
    # With full weight in every frame it is the moving average it was: a frame moves it by 1 - smoothing.
    t2 = Tracker(smoothing=0.6)
    t2.update([box], onehot(3), [1.0], [True])
    assert t2.update([box], onehot(0), [1.0], [True])[0].probs[0] == pytest.approx(0.4)

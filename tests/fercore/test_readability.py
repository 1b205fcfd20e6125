import math

import cv2
import numpy as np
import pytest

from fercore.readability import REASONS, ReadabilityLimits, head_pose, sharpness, unreadable_reason

# A frontal face's BlazeFace keypoints: right eye, left eye, nose, mouth, right ear, left ear (image x grows right).
FRONTAL = ((40.0, 40.0), (60.0, 40.0), (50.0, 52.0), (50.0, 62.0), (28.0, 45.0), (72.0, 45.0))


def rotate(points, degrees, centre=(50.0, 50.0)):
    a = math.radians(degrees)
    cx, cy = centre
    return tuple((cx + (x - cx) * math.cos(a) - (y - cy) * math.sin(a),
                  cy + (x - cx) * math.sin(a) + (y - cy) * math.cos(a)) for x, y in points)


def test_a_frontal_face_has_no_yaw_or_roll_and_rotation_is_roll():
    assert head_pose(FRONTAL) == pytest.approx((0.0, 0.0), abs=1e-6)
    for angle in (-40, -10, 25, 60):
        yaw, roll = head_pose(rotate(FRONTAL, angle))
        assert roll == pytest.approx(angle, abs=1e-6) and yaw == pytest.approx(0.0, abs=1e-6)


def test_yaw_grows_as_the_nose_moves_towards_one_ear():
    turned = [list(p) for p in FRONTAL]
    yaws = []
    for nose_x in (50, 58, 66, 71):  # the face turns to the image's right: the nose nears the left ear
        turned[2][0] = nose_x
        yaws.append(head_pose(tuple(map(tuple, turned)))[0])
    assert yaws[0] == pytest.approx(0, abs=1e-6)
    assert 0 < yaws[1] < yaws[2] < yaws[3] and yaws[3] > 60
    mirrored = tuple((100 - x, y) for x, y in FRONTAL[:2][::-1] + (FRONTAL[2],) + (FRONTAL[3],) + FRONTAL[4:][::-1])
    assert head_pose(mirrored)[0] == pytest.approx(0, abs=1e-6)


def test_sharpness_falls_with_blur():
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    values = [sharpness(face if s == 0 else cv2.GaussianBlur(face, (0, 0), s)) for s in (0, 0.8, 1.5, 3.0)]
    assert values == sorted(values, reverse=True) and values[-1] < values[0] / 20


@pytest.mark.parametrize("measures, reason", [
    ({"pose": (70.0, 0.0)}, "turned away"),
    ({"pose": (0.0, -45.0)}, "tilted"),
    ({"size": 10}, "too small"),
    ({"sharp": 1.0}, "blurred"),
    ({"confidence": 0.2}, "unsure"),
    ({"pose": (70.0, 45.0), "size": 10, "confidence": 0.1}, "turned away"),  # the first that applies
    ({}, None),
    ({"pose": None}, None),  # no keypoints: pose is not judged
])
def test_the_first_limit_a_face_breaks_is_its_reason(measures, reason):
    limits = ReadabilityLimits(max_yaw=50, max_roll=30, min_size=20, min_sharpness=40, min_confidence=0.3)
    ok = {"size": 100, "sharp": 500.0, "confidence": 0.9, "pose": (5.0, 5.0)}
    assert unreadable_reason(limits, **(ok | measures)) == reason
    assert reason is None or reason in REASONS


def test_the_default_limits_are_the_ones_measured_for_the_shipped_model():
    """fercore's defaults (for a model that carries no limits of its own) are those measured with
    weights/default.pt: on FER val (readability.json), with head turn and confidence chosen on the real faces
    (real_faces_limits.json); a new default model needs both re-measured."""
    import json

    from fercore.paths import WEIGHTS

    import dataclasses

    measured = json.loads((WEIGHTS / "eval" / "default" / "readability.json").read_text())
    assert measured["checkpoint"] == "weights/default.pt"
    chosen = json.loads((WEIGHTS / "eval" / "default" / "real_faces_limits.json").read_text())["chosen"]
    assert dataclasses.replace(ReadabilityLimits.from_curves(measured["limits"]), max_yaw=chosen["max_yaw"],
                               min_confidence=chosen["min_confidence"]) == ReadabilityLimits()


def test_limits_from_curves_are_rounded_and_keep_the_default_where_a_curve_never_crossed():
    measured = {"max_yaw": None, "max_roll": 36.7, "max_roll_aligned": None, "min_size": 12.68,
                "min_sharpness": 33.17, "min_confidence": 0.5710}
    limits = ReadabilityLimits.from_curves(measured)
    assert limits == ReadabilityLimits(max_yaw=ReadabilityLimits().max_yaw, max_roll=37.0, min_size=13.0,
                                       min_sharpness=33.0, min_confidence=0.57)


def test_limits_survive_the_round_trip_through_a_dict_and_bad_ones_are_refused():
    limits = ReadabilityLimits(max_yaw=80, max_roll=35, min_size=12, min_sharpness=30, min_confidence=0.6)
    assert ReadabilityLimits.from_dict(limits.to_dict()) == limits
    assert ReadabilityLimits.from_dict({**limits.to_dict(), "min_size": 12}).min_size == 12.0  # an int is a number
    bad = [
        ({**limits.to_dict(), "min_confidence": 1.5}, r"min_confidence must be a number in \[0, 1\], got 1.5"),
        ({**limits.to_dict(), "max_yaw": True}, r"max_yaw must be a number"),
        ({**limits.to_dict(), "max_roll": "30"}, r"max_roll must be a number"),
        ({**limits.to_dict(), "min_size": float("nan")}, r"min_size must be a number"),
        ({**limits.to_dict(), "extra": 1}, r"unknown 'extra'"),
        ({k: v for k, v in limits.to_dict().items() if k != "min_sharpness"}, r"missing 'min_sharpness'"),
        ([1, 2], r"must be a mapping"),
    ]
    for data, message in bad:
        with pytest.raises(ValueError, match=message):
            ReadabilityLimits.from_dict(data)

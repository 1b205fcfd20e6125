import cv2
import numpy as np
import pytest

from realtime.scenecut import THRESHOLD, SceneCuts


def frames_of(path, indices) -> dict[int, np.ndarray]:
    """The frames of a video at ``indices``, decoded in order."""
    wanted, out = set(indices), {}
    cap = cv2.VideoCapture(str(path))
    for i in range(max(indices) + 1):
        ok, frame = cap.read()
        assert ok, f"{path} ends before frame {i}"
        if i in wanted:
            out[i] = frame
    cap.release()
    return out


def is_cut(a: np.ndarray, b: np.ndarray) -> bool:
    cuts = SceneCuts()
    assert cuts.is_cut(a) is False  # a first frame is no cut
    return cuts.is_cut(b)


def room(seed: int, shift: int = 0) -> np.ndarray:
    """A made-up 640x480 scene: coloured blocks on a gradient, moved ``shift`` pixels right."""
    rng = np.random.default_rng(seed)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:] = np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None]
    for _ in range(12):
        x, y = rng.integers(0, 560), rng.integers(0, 400)
        frame[y:y + 80, x:x + 80] = rng.integers(0, 256, 3)
    return np.roll(frame, shift, axis=1)


def test_two_made_up_scenes_are_a_cut_and_motion_within_one_is_not():
    assert is_cut(room(0), room(1))
    assert not is_cut(room(0), room(0, shift=4))  # a small pan
    assert not is_cut(room(0), cv2.add(room(0), np.full((480, 640, 3), 12, np.uint8)))  # light brightening


def test_a_new_frame_size_is_a_cut_and_reset_forgets_the_previous_frame():
    cuts = SceneCuts()
    cuts.is_cut(room(0))
    assert cuts.is_cut(cv2.resize(room(0), (320, 240)))  # another source
    cuts.reset()
    assert not cuts.is_cut(room(1)) and cuts.score is None  # first frame of a new video
    assert cuts.is_cut(room(0)) and cuts.score >= THRESHOLD


HAMILTON_CUTS = (20, 82, 211)  # the first frame of each new shot, checked by eye


def test_the_cuts_of_the_hamilton_clip_and_only_those(media):
    """Frames 19/20, 81/82 (a blurred audience member, then the singer) and 210/211 (the singer, then the
    audience); no other pair of its 275 frames is a cut (the highest other score, 18.8, is a dim shot of a
    moving head)."""
    cuts = SceneCuts()
    cap = cv2.VideoCapture(str(media / "video" / "short_hamilton_clip.mp4"))
    found, n = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if cuts.is_cut(frame):
            found.append(n)
        n += 1
    cap.release()
    assert n == 275 and found == list(HAMILTON_CUTS)


@pytest.mark.parametrize("video,cut_at,not_at", [
    ("video/short_hamilton_clip.mp4", (82, 211), (81, 83, 210, 212, 60, 43)),
    ("group_pan.mp4", (50, 100), (49, 51, 99, 101, 39)),
])
def test_cuts_between_neighbouring_frames(media, video, cut_at, not_at):
    """Each index i names the pair (i - 1, i); the pairs beside a cut, and the highest-scoring pairs that are no
    cut, are not cuts."""
    frames = frames_of(media / video, [j for i in cut_at + not_at for j in (i - 1, i)])
    for i in cut_at:
        assert is_cut(frames[i - 1], frames[i]), i
    for i in not_at:
        assert not is_cut(frames[i - 1], frames[i]), i


def test_the_sample_clip_has_no_cut(sample_media):
    """portraits.mp4: a slow pan and zoom over two photos, one shot."""
    cuts = SceneCuts()
    cap = cv2.VideoCapture(str(sample_media / "portraits.mp4"))
    found = []
    for i in range(50):
        ok, frame = cap.read()
        assert ok
        if cuts.is_cut(frame):
            found.append(i)
    cap.release()
    assert found == []

import numpy as np
import pytest

from fercore.classes import EMOTIONS
from realtime.overlay import EMOTION_COLORS, draw_faces, draw_fps, emotion_color
from realtime.results import FaceResult

CLASSES = list(EMOTIONS)


def face(box, label="happy", track=1) -> FaceResult:
    probs = {c: (0.64 if c == label else 0.06) for c in CLASSES}
    return FaceResult(track, box, 0.9, label, 0.64, probs)


def colour_pixels(image: np.ndarray, bgr) -> int:
    return int(np.all(image == np.array(bgr, np.uint8), axis=2).sum())


def test_box_label_and_probability_bars_are_drawn():
    frame = np.full((480, 640, 3), 127, np.uint8)
    draw_faces(frame, [face((200, 150, 300, 270))], CLASSES)
    happy = EMOTION_COLORS["happy"]
    assert colour_pixels(frame[150:270, 200:300], happy) > 300  # box outline
    assert colour_pixels(frame[100:150, 200:400], happy) > 100  # label background above the box
    panel = frame[150:270, 300:400]  # bars to the right of the box: one colour per class
    for c in CLASSES:
        assert colour_pixels(panel, EMOTION_COLORS[c]) > 0, c
    draw_fps(frame, 29.7)
    assert colour_pixels(frame[:20, :60], (0, 0, 0)) > 100


@pytest.mark.parametrize("shape,box", [((480, 640), (560, 0, 640, 90)),   # top-right corner: no room right
                                      ((480, 640), (0, 400, 80, 480)),     # bottom-left corner
                                      ((40, 40), (0, 0, 40, 40)),          # face filling a tiny frame
                                      ((3000, 4000), (1000, 1000, 1600, 1600))])
def test_drawing_stays_inside_any_frame(shape, box):
    frame = np.zeros((*shape, 3), np.uint8)
    draw_faces(frame, [face(box, "surprise")], CLASSES)
    assert frame.any()


def test_classes_beyond_fer_get_a_colour():
    assert emotion_color("contempt", CLASSES + ["contempt"]) not in EMOTION_COLORS.values()
    classes = CLASSES + ["contempt"]
    frame = np.zeros((200, 300, 3), np.uint8)
    probs = {c: 1 / len(classes) for c in classes}
    draw_faces(frame, [FaceResult(1, (50, 50, 120, 120), 0.9, "contempt", probs["contempt"], probs)], classes)
    assert frame.any()

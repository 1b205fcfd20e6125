import numpy as np
import pytest

from fercore.classes import EMOTIONS
from realtime.overlay import EMOTION_COLORS, draw_faces, draw_fps, emotion_color, layout
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
    (place,) = layout([face(box, "surprise")], CLASSES, shape)
    h, w = shape
    for rect in (place.label, place.panel):  # a lone face always gets its panel
        assert 0 <= rect[0] < rect[2] <= w and 0 <= rect[1] < rect[3] <= h, rect
    frame = np.zeros((*shape, 3), np.uint8)
    draw_faces(frame, [face(box, "surprise")], CLASSES)
    assert colour_pixels(frame, EMOTION_COLORS["surprise"]) > 0


def overlap(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


@pytest.mark.parametrize("photo", ["photos/bbt4.jpg", "photos/bbt5.jpg", "group/vladmandic_sample6.jpg",
                                   "group/vladmandic_sample1.jpg", "group/two_people.jpg"])
def test_in_group_photos_no_label_or_panel_covers_another_face(media, photo):
    from realtime.detector import FaceDetector
    from realtime.photos import read_image
    image = read_image(media / photo)
    with FaceDetector("full", video=False) as detector:
        boxes = [d.box for d in detector.detect(image)]
    h, w = image.shape[:2]
    faces = [face((max(0, x0), max(0, y0), min(w, x1), min(h, y1)), track=i)
             for i, (x0, y0, x1, y1) in enumerate(boxes)]
    assert len(faces) >= 2
    places = layout(faces, CLASSES, image.shape)
    drawn = []  # (face index, rectangle) of every label and panel
    for i, p in enumerate(places):
        drawn += [(i, p.label)] + ([(i, p.panel)] if p.panel is not None else [])
    for i, rect in drawn:
        assert 0 <= rect[0] < rect[2] <= w and 0 <= rect[1] < rect[3] <= h
        for j, f in enumerate(faces):
            assert j == i or not overlap(rect, f.box), f"{photo}: face {i}'s overlay covers face {j}"
        for j, other in drawn:
            assert other is rect or not overlap(rect, other), f"{photo}: overlays of faces {i} and {j} overlap"
    assert sum(p.panel is not None for p in places) >= len(faces) // 2  # most faces keep their bars


def test_classes_beyond_fer_get_a_colour():
    assert emotion_color("contempt", CLASSES + ["contempt"]) not in EMOTION_COLORS.values()
    classes = CLASSES + ["contempt"]
    frame = np.zeros((200, 300, 3), np.uint8)
    probs = {c: 1 / len(classes) for c in classes}
    draw_faces(frame, [FaceResult(1, (50, 50, 120, 120), 0.9, "contempt", probs["contempt"], probs)], classes)
    assert frame.any()


def test_a_held_label_is_drawn_dimmer_and_marked():
    from realtime.overlay import held_color, label_text

    fresh, held = face((100, 150, 200, 270)), face((400, 150, 500, 270), track=2)
    held.held = True
    assert label_text(fresh) == "happy 64% #1" and label_text(held) == "~happy 64% #2"
    frame = np.full((480, 640, 3), 127, np.uint8)
    draw_faces(frame, [fresh, held], CLASSES)
    happy, dim = EMOTION_COLORS["happy"], held_color(EMOTION_COLORS["happy"])
    assert dim != happy and sum(dim) < sum(happy)
    assert colour_pixels(frame[150:270, 100:200], happy) > 300 and colour_pixels(frame[150:270, 100:200], dim) == 0
    assert colour_pixels(frame[150:270, 400:500], dim) > 300 and colour_pixels(frame[150:270, 400:500], happy) == 0
    assert colour_pixels(frame[100:150, 400:600], (255, 255, 255)) > 20  # white letters on the dim label

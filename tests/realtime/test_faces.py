import cv2
import numpy as np
import pytest
import torch

from realtime.classifier import load_classifier
from fercore.boxes import clip_box
from realtime.faces import MIN_FACE_PIXELS, crop_box, gray_crop, readable_part


def test_the_crop_is_the_box_widened_by_the_margin_and_made_square():
    assert crop_box((100, 100, 200, 200), 0.1) == (90, 90, 210, 210)
    assert crop_box((100, 100, 200, 160), 0.0) == (100, 80, 200, 180)  # square about the centre
    with pytest.raises(ValueError):
        crop_box((0, 0, 10, 10), -0.1)


def test_a_face_cut_by_the_frame_edge_is_padded_black_not_stretched():
    frame = np.full((100, 120, 3), 200, np.uint8)
    crop = gray_crop(frame, (-20, 10, 40, 70))  # a 60x60 square, 20 columns left of the frame
    assert crop.shape == (60, 60)
    assert (crop[:, :20] == 0).all() and (crop[:, 20:] == 200).all()
    corner = gray_crop(frame, (90, 80, 150, 140))  # past the right and bottom edges
    assert corner.shape == (60, 60)
    assert (corner[:20, :30] == 200).all() and (corner[20:, :] == 0).all() and (corner[:, 30:] == 0).all()


def test_faces_almost_outside_the_frame_are_dropped():
    assert not readable_part((-100, 10, 3, 110), 640, 480)  # 3 px inside
    assert not readable_part((700, 10, 800, 110), 640, 480)  # entirely outside
    assert not readable_part((10, 10, 10 + MIN_FACE_PIXELS - 1, 30), 640, 480)
    assert readable_part((10, 10, 10 + MIN_FACE_PIXELS, 10 + MIN_FACE_PIXELS), 640, 480)
    assert clip_box((-5, -5, 700, 500), 640, 480) == (0, 0, 640, 480)


def test_crops_are_grayscale_whatever_the_frame():
    bgr = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    crop = gray_crop(bgr, (10, 20, 40, 50))
    assert crop.shape == (30, 30) and crop.dtype == np.uint8
    assert np.array_equal(crop, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[20:50, 10:40])


def test_realtime_preprocessing_equals_trainings_evaluation_path(shared_fer, tiny_checkpoint):
    """No train/serve skew: a FER-2013 image read as a colour frame, cropped with a full-frame box and no
    margin, gives exactly the tensor training's evaluation path feeds the model."""
    path = sorted((shared_fer / "val" / "happy").iterdir())[0]
    prep = load_classifier(tiny_checkpoint, backend="torch").preprocessing
    training = prep.normalize(torch.from_numpy(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))[None])
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    h, w = frame.shape[:2]
    for backend in ("torch", "onnx"):
        classifier = load_classifier(tiny_checkpoint, backend=backend)
        realtime = classifier.prepare([gray_crop(frame, crop_box((0, 0, w, h), 0.0))])
        assert realtime.shape == training.shape == (1, 1, 48, 48)
        assert torch.equal(torch.from_numpy(realtime), training)

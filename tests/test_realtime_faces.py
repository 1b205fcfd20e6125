import cv2
import numpy as np
import pytest
import torch

from realtime.classifier import load_classifier
from fercore.boxes import clip_box
from realtime.faces import MIN_FACE_PIXELS, crop_box, gray_crops


def test_margin_widens_each_side_by_a_share_of_the_box():
    assert crop_box((100, 100, 200, 160), 0.1, 640, 480) == (90, 94, 210, 166)
    assert crop_box((100, 100, 200, 160), 0.0, 640, 480) == (100, 100, 200, 160)
    with pytest.raises(ValueError):
        crop_box((0, 0, 10, 10), -0.1, 640, 480)


def test_boxes_are_clipped_to_the_frame_for_faces_cut_by_its_edge():
    assert crop_box((-50, -20, 60, 90), 0.2, 640, 480) == (0, 0, 82, 112)
    assert crop_box((600, 400, 700, 500), 0.0, 640, 480) == (600, 400, 640, 480)
    assert clip_box((-5, -5, 700, 500), 640, 480) == (0, 0, 640, 480)


def test_faces_almost_outside_the_frame_or_tiny_are_dropped():
    assert crop_box((-100, 10, 3, 110), 0.0, 640, 480) is None  # 3 px inside
    assert crop_box((700, 10, 800, 110), 0.0, 640, 480) is None  # entirely outside
    assert crop_box((10, 10, 10 + MIN_FACE_PIXELS - 1, 30), 0.0, 640, 480) is None
    assert crop_box((10, 10, 10 + MIN_FACE_PIXELS, 10 + MIN_FACE_PIXELS), 0.0, 640, 480) is not None


def test_crops_are_grayscale_whatever_the_frame():
    bgr = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    crops = gray_crops(bgr, [(0, 0, 20, 10), (10, 20, 60, 50)])
    assert [c.shape for c in crops] == [(10, 20), (30, 50)]
    assert all(c.dtype == np.uint8 for c in crops)


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
        realtime = classifier.prepare(gray_crops(frame, [crop_box((0, 0, w, h), 0.0, w, h)]))
        assert realtime.shape == training.shape == (1, 1, 48, 48)
        assert torch.equal(torch.from_numpy(realtime), training)

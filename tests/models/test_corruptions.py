import numpy as np
import pytest
import torch

from models.preprocessing import Preprocessing
from models import corruptions
from training.augment import BatchAugment
from training.config import DEFAULTS, ConfigError, load_config
from models.corruptions import LEVELS, corrupted_copies
from training.corrupted_val import main as corrupted_main


def faces(n=8, seed=0):
    yy, xx = np.mgrid[:48, :48]
    base = ((np.sin(xx / 3.0) + np.cos(yy / 4.0)) * 60 + 128).astype(np.uint8)  # detail that blur removes
    rng = np.random.default_rng(seed)
    return np.stack([np.roll(base, int(s), axis=1) for s in rng.integers(0, 48, n)])


def sharpness(img):
    return float(np.abs(np.diff(img.astype(np.float32), axis=1)).mean())


def test_each_corruption_grows_with_severity():
    face = faces(1)[0]
    rng = np.random.default_rng(0)
    for kind in ("blur", "low_resolution"):
        mild, severe = (corruptions.corrupt(face, kind, s, rng) for s in (0.0, 1.0))
        assert sharpness(face) > sharpness(mild) > sharpness(severe)
    mild, severe = (corruptions.corrupt(face, "low_light", s, rng) for s in (0.0, 1.0))
    assert face.mean() > mild.mean() > severe.mean()
    flat = np.full((48, 48), 128, np.uint8)
    assert corruptions.corrupt(flat, "noise", 0.0, rng).std() < corruptions.corrupt(flat, "noise", 1.0, rng).std()
    assert np.abs(corruptions.jpeg(face, 12).astype(int) - face).mean() > np.abs(corruptions.jpeg(face, 60).astype(int) - face).mean()
    for kind in ("box_shift", "rotation"):
        assert not np.array_equal(corruptions.corrupt(face, kind, 1.0, rng), face)
    with pytest.raises(ValueError, match="unknown corruption"):
        corruptions.corrupt(face, "fog", 0.5, rng)


def test_corrupted_copy_is_deterministic_and_covers_every_kind_and_level():
    images = faces(6)
    a = list(corrupted_copies(images, seed=0))
    b = list(corrupted_copies(images, seed=0))
    assert [(k, lv) for k, lv, _ in a] == [(k, lv) for k in corruptions.KINDS for lv in LEVELS]
    for (_, _, x), (_, _, y) in zip(a, b):
        assert x.dtype == np.uint8 and x.shape == images.shape
        assert np.array_equal(x, y)
    noisy = {(k, lv): x for k, lv, x in a}
    other_seed = {(k, lv): x for k, lv, x in corrupted_copies(images, seed=1)}
    assert not np.array_equal(noisy["noise", "severe"], other_seed["noise", "severe"])


@pytest.mark.slow
def test_corrupted_val_command_writes_a_folder_layout_per_corruption(tiny_fer_csv, tmp_path):
    from training.data import read_split
    out = tmp_path / "cval"
    assert corrupted_main(["--data", str(tiny_fer_csv), "--out", str(out), "--cache-dir", "none"]) == 0
    images, labels = read_split(out / "blur-severe", "val", progress=False)
    original, original_labels = read_split(tiny_fer_csv, "val", progress=False)
    assert len(images) == len(original) == 64
    assert sorted(labels.tolist()) == sorted(original_labels.tolist())
    assert len(list(out.iterdir())) == len(corruptions.KINDS) * len(LEVELS)


def test_camera_augmentation_is_per_image_and_reproducible():
    x = torch.from_numpy(faces(1)).repeat(64, 1, 1)
    off = {k: 0 * v if isinstance(v, (int, float)) else v for k, v in DEFAULTS["augment"].items()}
    aug = BatchAugment(dict(off, camera_p=0.3), Preprocessing())
    a, b = (aug(x, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a, b)
    plain = (x.float().unsqueeze(1) / 255 - 0.5) / 0.5
    changed = torch.tensor([not torch.equal(o, p) for o, p in zip(a, plain)])
    assert 40 < changed.sum() < 62  # P(no effect) = 0.7**5 = 0.17: most images, not all, each its own way
    assert len({tuple(v.flatten()[:100].tolist()) for v in a[changed]}) > 30


def test_zoom_scales_about_the_centre():
    x = torch.zeros(32, 48, 48, dtype=torch.uint8)
    x[:, 20:28, 20:28] = 255
    off = {k: 0 * v if isinstance(v, (int, float)) else v for k, v in DEFAULTS["augment"].items()}
    out = BatchAugment(dict(off, zoom=0.3), Preprocessing())(x, torch.Generator().manual_seed(8))
    area = (out > 0).flatten(1).float().sum(1)
    assert area.min() < 0.85 * 64 < 1.15 * 64 < area.max()  # some grew, some shrank
    ys, xs = torch.nonzero(out[0, 0] > 0, as_tuple=True)
    assert abs(ys.float().mean() - 23.5) < 0.6 and abs(xs.float().mean() - 23.5) < 0.6


@pytest.mark.parametrize("override", ["augment.camera_p=1.5", "augment.zoom=-0.1", "augment.hflip=5"])
def test_probabilities_and_zoom_are_range_checked(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(None, [override])

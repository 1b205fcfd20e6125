import numpy as np
import torch

from models.preprocessing import Preprocessing
from training.augment import BatchAugment, mixup
from training.config import DEFAULTS

OFF = {"hflip": 0.0, "brightness": 0.0, "contrast": 0.0, "rotation": 0.0, "crop_padding": 0, "erasing_p": 0.0,
       "erasing_scale": [0.02, 0.2], "erasing_ratio": [0.3, 3.3], "equalize_p": 0.0, "zoom": 0.0,
       "camera_p": 0.0}
PREP = Preprocessing()


def faces(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 48, 48), generator=g, dtype=torch.uint8)


def test_everything_off_is_plain_normalisation():
    x = faces()
    out = BatchAugment(OFF, PREP)(x, torch.Generator().manual_seed(0))
    assert out.shape == (64, 1, 48, 48)
    assert torch.allclose(out, (x.float().unsqueeze(1) / 255 - 0.5) / 0.5)


def test_flip_is_per_image():
    x = faces()
    out = BatchAugment(dict(OFF, hflip=0.5), PREP)(x, torch.Generator().manual_seed(1))
    plain = (x.float().unsqueeze(1) / 255 - 0.5) / 0.5
    flipped = torch.tensor([torch.equal(o, p.flip(-1)) for o, p in zip(out, plain)])
    same = torch.tensor([torch.equal(o, p) for o, p in zip(out, plain)])
    assert (flipped | same).all()
    assert 10 < flipped.sum() < 54  # some flipped, some not: not one coin for the whole batch


def test_shift_matches_random_crop_with_padding():
    x = faces(32)
    out = BatchAugment(dict(OFF, crop_padding=4), PREP)(x, torch.Generator().manual_seed(2))
    img = (x.float() / 255 - 0.5) / 0.5
    padded = torch.nn.functional.pad(img, (4, 4, 4, 4), value=-1.0)
    for o, p in zip(out[:, 0], padded):  # every output is one of the 81 crops of the padded image
        assert any(torch.allclose(o, p[i:i + 48, j:j + 48], atol=1e-4) for i in range(9) for j in range(9))


def test_erasing_blanks_a_rectangle_in_about_half_the_images():
    x = torch.full((400, 48, 48), 255, dtype=torch.uint8)
    out = BatchAugment(dict(OFF, erasing_p=0.5), PREP)(x, torch.Generator().manual_seed(3))
    erased = (out == 0).flatten(1)
    share = erased.any(1).float().mean().item()
    assert 0.4 < share < 0.6
    area = erased.sum(1)[erased.any(1)].float() / (48 * 48)
    assert area.min() >= 0.015 and area.max() <= 0.21


def test_seed_recipe_is_random_per_image_and_reproducible():
    x = faces(1).repeat(16, 1, 1)
    aug = BatchAugment(DEFAULTS["augment"] | {"equalize_p": 0.5}, PREP)
    a = aug(x, torch.Generator().manual_seed(4))
    b = aug(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    distinct = {tuple(np.round(v.flatten()[:200].numpy(), 3)) for v in a}
    assert len(distinct) == 16
    assert a.min() >= -1 and a.max() <= 1


def test_mixup_blends_each_image_with_a_partner_by_one_lambda():
    x = torch.randn(32, 1, 48, 48)
    mixed, partner, lam = mixup(x, 0.4, torch.Generator().manual_seed(5))
    assert sorted(partner.tolist()) == list(range(32))  # a permutation of the batch
    assert 0.0 < lam < 1.0
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[partner])
    again, partner2, lam2 = mixup(x, 0.4, torch.Generator().manual_seed(5))
    assert lam2 == lam and torch.equal(partner2, partner) and torch.equal(again, mixed)
    lams = [mixup(x, 0.2, torch.Generator().manual_seed(s))[2] for s in range(200)]
    assert np.mean([min(v, 1 - v) < 0.1 for v in lams]) > 0.5  # Beta(0.2, 0.2) mostly stays near 0 or 1

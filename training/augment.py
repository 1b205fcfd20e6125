"""Batched training augmentation with per-image randomness.

Works on a whole uint8 batch at once (a few ms per batch, far below the model step) while every image
draws its own camera effects (models.corruptions), flip, jitter, rotation, zoom, shift and erasing, as
torchvision's per-sample transforms would.
The random crop "48 with padding 4" is an integer shift of up to 4 pixels with zero fill, so it is done in
the same resampling as the rotation. Mixup, which also mixes labels, is a separate step the trainer applies.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import equalize

from models.preprocessing import Preprocessing
from models.corruptions import camera_augment


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


class BatchAugment:
    """uint8 faces (N, H, W) -> augmented, normalised float batch (N, 1, H, W)."""

    def __init__(self, cfg: dict, prep: Preprocessing) -> None:
        self.cfg = cfg
        self.prep = prep

    def __call__(self, faces: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        c, dev = self.cfg, faces.device
        n, h, w = faces.shape
        if c["camera_p"] > 0:  # per-image numpy work on the uint8 faces, seeded from ``gen`` for exact resume
            seed = int(torch.randint(2**62, (1,), generator=gen, device=gen.device))
            faces = torch.from_numpy(camera_augment(faces.cpu().numpy(), c["camera_p"],
                                                    np.random.default_rng(seed))).to(dev)
        x = faces.unsqueeze(1)
        if c["equalize_p"] > 0:
            pick = torch.rand(n, generator=gen, device=dev) < c["equalize_p"]
            if pick.any():
                x = x.clone()
                x[pick] = equalize(x[pick])
        x = x.float() / 255.0
        if c["hflip"] > 0:
            flip = (torch.rand(n, generator=gen, device=dev) < c["hflip"]).view(n, 1, 1, 1)
            x = torch.where(flip, x.flip(-1), x)
        if c["brightness"] > 0:
            b = _uniform(n, 1 - c["brightness"], 1 + c["brightness"], gen, dev).view(n, 1, 1, 1)
            x = (x * b).clamp(0, 1)
        if c["contrast"] > 0:
            k = _uniform(n, 1 - c["contrast"], 1 + c["contrast"], gen, dev).view(n, 1, 1, 1)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (mean + k * (x - mean)).clamp(0, 1)
        x = self._rotate_shift(x, gen)
        x = self.prep.normalize_unit(x)
        if c["erasing_p"] > 0:
            x = self._erase(x, gen)
        return x

    def _rotate_shift(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        c, dev = self.cfg, x.device
        n, _, h, w = x.shape
        if c["rotation"] <= 0 and c["crop_padding"] <= 0 and c["zoom"] <= 0:
            return x
        angle = _uniform(n, -c["rotation"], c["rotation"], gen, dev) * (math.pi / 180)
        pad = c["crop_padding"]
        shift = torch.randint(-pad, pad + 1, (n, 2), generator=gen, device=dev).float()
        cos, sin = torch.cos(angle), torch.sin(angle)
        if c["zoom"] > 0:  # the detector's box a little larger or smaller: scale the sampling grid
            inv = 1.0 / _uniform(n, 1 - c["zoom"], 1 + c["zoom"], gen, dev)
            cos, sin = cos * inv, sin * inv
        # affine_grid maps output coordinates (in [-1, 1]) to input coordinates.
        theta = torch.stack([
            torch.stack([cos, -sin * h / w, shift[:, 0] * 2 / w], dim=1),
            torch.stack([sin * w / h, cos, shift[:, 1] * 2 / h], dim=1),
        ], dim=1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _erase(self, x: torch.Tensor, gen: torch.Generator, attempts: int = 10) -> torch.Tensor:
        """torchvision's RandomErasing (value 0) per image: up to 10 tries to fit a random rectangle."""
        c, dev = self.cfg, x.device
        n, _, h, w = x.shape
        area = h * w
        scale = _uniform(n * attempts, *c["erasing_scale"], gen, dev) * area
        log_r = _uniform(n * attempts, math.log(c["erasing_ratio"][0]), math.log(c["erasing_ratio"][1]), gen, dev)
        ratio = torch.exp(log_r)
        eh = torch.sqrt(scale * ratio).round().long().view(n, attempts)
        ew = torch.sqrt(scale / ratio).round().long().view(n, attempts)
        fits = (eh < h) & (ew < w)
        first = torch.where(fits.any(1), fits.float().argmax(1), torch.zeros(n, dtype=torch.long, device=dev))
        eh = eh.gather(1, first[:, None]).squeeze(1)
        ew = ew.gather(1, first[:, None]).squeeze(1)
        apply = fits.any(1) & (torch.rand(n, generator=gen, device=dev) < c["erasing_p"])
        top = (torch.rand(n, generator=gen, device=dev) * (h - eh + 1).clamp(min=1)).long()
        left = (torch.rand(n, generator=gen, device=dev) * (w - ew + 1).clamp(min=1)).long()
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        mask = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
                & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)) & apply.view(n, 1, 1))
        return x.masked_fill(mask.unsqueeze(1), 0.0)


def mixup(x: torch.Tensor, alpha: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al. 2018): each image blended with another of the batch by one lambda ~ Beta(alpha,
    alpha). Returns the mixed batch, the partner of each image and lambda; the loss is then
    lam * loss(y) + (1 - lam) * loss(y[partner]).

    Lambda is drawn through ``gen`` (numpy's Beta seeded from it), so a resumed run mixes the same way.
    """
    seed = int(torch.randint(2**62, (1,), generator=gen, device=gen.device))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    partner = torch.randperm(len(x), generator=gen, device=gen.device).to(x.device)
    return lam * x + (1 - lam) * x[partner], partner, lam

"""Shared fixtures. Real data lives in ../shared beside the checkout (CI lays it there too)."""
from pathlib import Path

import pytest

from fercore.paths import ROOT, SHARED, SHARED_FER, SHARED_MEDIA


@pytest.fixture(scope="session")
def shared_fer() -> Path:
    path = SHARED_FER
    if not (path / "train").is_dir() or not (path / "val").is_dir():
        pytest.skip(f"FER-2013 folders not found at {path} (expected ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def tiny_fer_csv(tmp_path_factory) -> Path:
    """A small fer2013.csv of random faces: 192 Training rows and 64 PublicTest rows, all classes."""
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("fer") / "fer2013.csv"
    lines = ["emotion,pixels,Usage"]
    for usage, n in (("Training", 192), ("PublicTest", 64)):
        for i in range(n):
            pixels = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
            lines.append(f"{i % 7},{pixels},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


# --- realtime app -------------------------------------------------------------------------------------------
MEDIA = SHARED_MEDIA


@pytest.fixture(scope="session")
def media() -> Path:
    """Real photos and videos of people (../shared/media, see its SOURCE.md)."""
    if not (MEDIA / "photos").is_dir() or not (MEDIA / "group_pan.mp4").is_file():
        pytest.skip(f"test media not found at {MEDIA} (expected ../shared beside the checkout)")
    return MEDIA


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained eighth-width CNN checkpoint: its labels mean nothing, but it runs the whole path.

    Its BatchNorm statistics are taken from random faces so that, unlike a fresh model, its outputs depend on
    the input.
    """
    import torch

    from fercore.classes import EMOTIONS
    from models import build_model
    from models.checkpoint import atomic_save, make_checkpoint

    torch.manual_seed(0)
    model = build_model("cnn", width=0.125).train()
    with torch.no_grad():
        for _ in range(10):
            model(torch.rand(32, 1, 48, 48))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    atomic_save(make_checkpoint(model.eval(), EMOTIONS), path)
    return path

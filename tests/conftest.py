"""Shared fixtures. Real data lives in ../shared beside the checkout (CI lays it there too)."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_fer() -> Path:
    path = SHARED / "data" / "fer2013"
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

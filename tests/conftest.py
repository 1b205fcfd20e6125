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

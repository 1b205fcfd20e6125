"""Shared fixtures. Real data lives in ../shared beside the checkout (CI lays it there too)."""
import re
from pathlib import Path

import pytest

from fercore.classes import EMOTIONS
from fercore.paths import CONFIGS, SHARED_FER, SHARED_MEDIA
from fercore.readability import REASONS
from realtime import results


@pytest.fixture(scope="session")
def shared_fer() -> Path:
    path = SHARED_FER
    if not (path / "train").is_dir() or not (path / "val").is_dir():
        pytest.skip(f"FER-2013 folders not found at {path} (expected ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def fer_cache(tmp_path_factory) -> Path:
    """One decoded-data cache for the whole test session: FER-2013 is decoded once, not once per test file."""
    return tmp_path_factory.mktemp("fer-cache")


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
def sample_media() -> Path:
    """The small public-domain photos and clip that ship in samples/ (see its SOURCE.md): always there, so the
    core realtime tests (pipeline, API, annotate) also run in a clone without ../shared. ``photos/astronaut.jpg``
    and ``photos/grace_hopper.jpg`` hold one face each; ``portraits.mp4`` (50 frames, 480x270, 25 fps) both."""
    return Path(__file__).resolve().parents[1] / "samples"


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


# --- results files: the documented schema, checked by the results and annotate tests ---------------------
def _check_face(f: dict) -> None:
    """The documented schema of one face (docs/results.md)."""
    assert set(f) == {"track", "box", "score", "label", "reason", "confidence", "probabilities", "held", "weight"}
    assert f["held"] in (True, False) and 0 <= f["weight"] <= 1 and (not f["held"] or f["label"] is not None)
    assert isinstance(f["track"], int) and f["track"] >= 1
    assert len(f["box"]) == 4 and all(isinstance(v, int) for v in f["box"])
    assert f["box"][0] < f["box"][2] and f["box"][1] < f["box"][3]
    assert 0 <= f["score"] <= 1 and 0 <= f["confidence"] <= 1
    assert list(f["probabilities"]) == list(EMOTIONS)
    top = max(f["probabilities"], key=f["probabilities"].get)
    assert f["confidence"] == f["probabilities"][top]
    assert (f["label"], f["reason"]) == (top, None) or (f["label"] is None and f["reason"] in REASONS)
    assert sum(f["probabilities"].values()) == pytest.approx(1, abs=1e-3)


def _check_document(doc: dict, kind: str) -> None:
    """The documented schema of a results file; used by the annotate tests too."""
    assert doc["schema"] == results.SCHEMA and doc["version"] == results.VERSION and doc["kind"] == kind
    assert doc["classes"] == list(EMOTIONS)
    assert {"input", "settings", "frames", "summary"} <= set(doc)
    assert {"checkpoint", "backend", "detector", "min_confidence", "margin", "smoothing"} <= set(doc["settings"])
    for i, fr in enumerate(doc["frames"]):
        assert set(fr) == {"frame", "time", "source", "cut", "faces"}
        assert fr["cut"] in (True, False) and (kind == "video" or fr["cut"] is False)
        assert isinstance(fr["frame"], int)
        if kind == "video":
            assert fr["frame"] == i and fr["time"] >= 0 and fr["source"] is None
        else:
            assert fr["time"] is None and isinstance(fr["source"], str)
        for f in fr["faces"]:
            _check_face(f)
    s = doc["summary"]
    assert s["frames"] == len(doc["frames"])
    assert s["faces"] == sum(len(fr["faces"]) for fr in doc["frames"])
    assert list(s["emotions"]) == list(EMOTIONS)
    if kind == "video":
        assert doc["video"]["frame_count"] == len(doc["frames"])
        for t in s["tracks"].values():
            if t["uncertain"] == 1.0:  # never labelled
                assert t["dominant"] is None and sum(t["emotions"].values()) == 0
            else:
                assert sum(t["emotions"].values()) == pytest.approx(1, abs=1e-3)
                assert t["dominant"] in list(EMOTIONS)


@pytest.fixture(scope="session")
def check_face():
    return _check_face


@pytest.fixture(scope="session")
def check_document():
    return _check_document


# --- training: tiny runs on the small data the tests make --------------------------------------------------
class TinyRun:
    """A tiny training (eighth-width CNN, one thread, no TensorBoard, no cache) as a config or as the arguments of
    ``python -m training.run``; ``extra`` overrides come last."""

    overrides = ["model.args.width=0.125", "train.threads=1", "train.batch_size=32", "output.tensorboard=false",
                 "data.cache_dir=null"]
    config = CONFIGS / "cnn.yaml"

    def cfg(self, data, out, *extra) -> dict:
        from training.config import load_config

        return load_config(self.config, self.overrides + [f"data.root={data}", f"output.dir={out}", *extra])

    def args(self, data, out, *extra) -> list[str]:
        return ["--config", str(self.config),
                *[f"--set={s}" for s in self.overrides + [f"data.root={data}", f"output.dir={out}", *extra]]]


@pytest.fixture(scope="session")
def tiny_run() -> TinyRun:
    return TinyRun()


# --- command lines: every option has a help text ----------------------------------------------------------
def _undocumented(help_text: str) -> list[str]:
    """The arguments in an argparse help text that have no description (and the number of arguments seen)."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line in ("positional arguments:", "options:"))
    missing, seen = [], 0
    for i in range(start, len(lines)):
        entry = re.fullmatch(r"  (\S.*?)(?:\s{2,}(\S.*))?", lines[i])
        if not entry:
            continue  # a heading, a blank line or a help text's continuation
        seen += 1
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if entry[2] is None and not (following.startswith(" " * 4) and following.strip()):
            missing.append(entry[1])
    assert seen >= 2, f"no arguments found in:\n{help_text}"
    return missing


@pytest.fixture(scope="session")
def undocumented():
    return _undocumented


@pytest.fixture(autouse=True)
def _small_int8_calibration(monkeypatch):
    """The app quantizes a checkpoint whose int8 export is not shipped on 3,072 training faces; tests that run such
    a model calibrate on 128 of them (the same fixed draw, cut short), so they take seconds, not minutes."""
    from models import quantize

    draw = quantize.calibration_faces

    def calibration_faces(data=quantize.SHARED_FER, n=128, **kwargs):
        return draw(data, n, **kwargs)
    monkeypatch.setattr(quantize, "calibration_faces", calibration_faces)

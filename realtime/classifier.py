"""The emotion model behind a small interface, so the inference backend can be swapped.

Two backends run a checkpoint: ONNX Runtime (the default: faster on a CPU, and it starts without importing
torch) and PyTorch itself. A .pt checkpoint runs on ONNX Runtime through its export: the ``.onnx`` beside it
when that was exported from exactly this checkpoint (its metadata records the checkpoint's SHA-256), else an
export made once and kept in the cache folder, so a changed checkpoint is never served from a stale export.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from fercore.paths import DEFAULT_CHECKPOINT
from models.errors import CheckpointError
from models.onnx_runtime import checkpoint_digest, open_session
from models.preprocessing import Preprocessing, faces_to_input

BACKENDS = ("onnx", "torch")
ONNX_CACHE = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "fer-emotion" / "onnx"


class EmotionClassifier:
    """The interface of a backend: the checkpoint's classes and preprocessing; all faces of a frame in one batch."""

    def __init__(self, classes: list[str], preprocessing: Preprocessing, temperature: float = 1.0) -> None:
        self.classes = list(classes)
        self.preprocessing = preprocessing
        self.temperature = temperature  # calibration: logits / temperature before the softmax

    def prepare(self, gray_faces: list[np.ndarray]) -> np.ndarray:
        """The model input for face crops: models.preprocessing with the checkpoint's parameters."""
        return faces_to_input(gray_faces, self.preprocessing)

    def predict(self, gray_faces: list[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, len(classes)) for N grayscale face crops of any size."""
        if not gray_faces:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return self._probabilities(self.prepare(gray_faces))

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # each backend runs its model here


class TorchClassifier(EmotionClassifier):
    """A checkpoint's model run by PyTorch on the CPU."""

    def __init__(self, model, classes: list[str]) -> None:
        super().__init__(classes, model.preprocessing, getattr(model, "temperature", 1.0))
        self.model = model.eval()

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return torch.softmax(self.model(torch.from_numpy(batch)) / self.temperature, dim=1).numpy()


class OnnxClassifier(EmotionClassifier):
    """An ONNX file written by models.onnx_export (its metadata describes classes and preprocessing)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.session, meta = open_session(path, threads)
        try:
            preprocessing = Preprocessing.from_dict(meta["preprocessing"])
            classes = meta["classes"]
            temperature = float(meta.get("temperature", 1.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: its model description is incomplete or invalid ({exc})") from exc
        if not 0.01 <= temperature <= 100:
            raise CheckpointError(f"{path}: temperature {temperature} is outside [0.01, 100]")
        super().__init__(classes, preprocessing, temperature)

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {"faces": batch})[0] / self.temperature
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def onnx_for(checkpoint: Path) -> Path:
    """An ONNX export of exactly this checkpoint: the one beside it if it matches, else a cached one (made on
    first use; that needs torch, once)."""
    sha = checkpoint_digest(checkpoint)
    beside = checkpoint.with_suffix(".onnx")
    cached = ONNX_CACHE / f"{sha[:32]}.onnx"
    for candidate in (beside, cached):
        if candidate.is_file():
            try:
                if open_session(candidate)[1].get("checkpoint_sha256") == sha:
                    return candidate
            except CheckpointError:
                pass  # not ours or damaged: export afresh
    from models.onnx_export import export_onnx

    try:
        return export_onnx(checkpoint, cached)
    except OSError:  # no writable cache folder: an export for this run only
        return export_onnx(checkpoint, Path(tempfile.mkdtemp(prefix="fer-emotion-")) / "model.onnx")


def load_classifier(checkpoint: str | Path | None = None, threads: int = 1,
                    backend: str = "onnx") -> EmotionClassifier:
    """The classifier of a checkpoint (.pt) or exported model (.onnx); weights/default.pt when none is given.

    ``threads``: CPU threads for inference (PyTorch's setting is process-wide).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if checkpoint is None and not path.is_file():
        raise CheckpointError(f"the default emotion model {path} is missing: train one "
                              "(`python -m training.run --config training/configs/default/stage1.yaml`) and copy "
                              "its best checkpoint there, or pass --checkpoint PATH")
    if not path.is_file():
        raise CheckpointError(f"{'ONNX model' if path.suffix.lower() == '.onnx' else 'checkpoint'} not found: {path}")
    if path.suffix.lower() == ".onnx":
        if backend != "onnx":
            raise CheckpointError(f"{path} is an ONNX model: it runs with --backend onnx only")
        return OnnxClassifier(path, threads)
    if backend == "onnx":
        return OnnxClassifier(onnx_for(path), threads)
    import torch

    from models.checkpoint import load_model

    torch.set_num_threads(threads)
    model, ckpt = load_model(path)
    return TorchClassifier(model, ckpt["classes"])

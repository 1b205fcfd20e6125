"""The emotion model behind a small interface, so the inference backend can be swapped.

Two backends run a checkpoint: PyTorch itself, and ONNX Runtime (an .onnx file from models.onnx_export, or a
.pt checkpoint exported on loading). ONNX Runtime is the default: on a 2-core CPU it classified a frame's
faces 1.4-1.8x faster than PyTorch, with the same probabilities.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from fercore.paths import DEFAULT_CHECKPOINT
from models.checkpoint import CheckpointError, load_model
from models.onnx_export import export_onnx, open_session
from models.preprocessing import Preprocessing, faces_to_input

BACKENDS = ("onnx", "torch")


class EmotionClassifier:
    """The interface of a backend: the checkpoint's classes and preprocessing; all faces of a frame in one batch."""

    def __init__(self, classes: list[str], preprocessing: Preprocessing) -> None:
        self.classes = list(classes)
        self.preprocessing = preprocessing

    def prepare(self, gray_faces: list[np.ndarray]) -> torch.Tensor:
        """The model input for face crops: models.preprocessing with the checkpoint's parameters."""
        return faces_to_input(gray_faces, self.preprocessing)

    def predict(self, gray_faces: list[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, len(classes)) for N grayscale face crops of any size."""
        if not gray_faces:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return self._probabilities(self.prepare(gray_faces))

    def _probabilities(self, batch: torch.Tensor) -> np.ndarray:
        raise NotImplementedError  # each backend runs its model here


class TorchClassifier(EmotionClassifier):
    """A checkpoint's model run by PyTorch on the CPU."""

    def __init__(self, model: torch.nn.Module, classes: list[str]) -> None:
        super().__init__(classes, model.preprocessing)
        self.model = model.eval()

    def _probabilities(self, batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(self.model(batch), dim=1).numpy()


class OnnxClassifier(EmotionClassifier):
    """An ONNX file written by models.onnx_export (its metadata describes classes and preprocessing)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.session, meta = open_session(path, threads)
        super().__init__(meta["classes"], Preprocessing.from_dict(meta["preprocessing"]))

    def _probabilities(self, batch: torch.Tensor) -> np.ndarray:
        logits = self.session.run(None, {"faces": batch.numpy()})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def load_classifier(checkpoint: str | Path | None = None, threads: int = 1,
                    backend: str = "onnx") -> EmotionClassifier:
    """The classifier of a checkpoint (.pt) or exported model (.onnx); weights/default.pt when none is given.

    ``threads``: CPU threads for inference (PyTorch's setting is process-wide). On an idle 2-core CPU two
    ONNX Runtime threads cut a face from 6.4 to 3.7 ms; on cores busy with other work (a training run) extra
    threads wait on each other and one is faster (2 PyTorch threads made a batch 10-40x slower there).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if checkpoint is None and not path.is_file():
        raise CheckpointError(f"the default emotion model {path} is missing: train one "
                              "(`python -m training.run --config training/configs/default.yaml`) and copy its "
                              "best checkpoint there, or pass --checkpoint PATH")
    torch.set_num_threads(threads)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise CheckpointError(f"ONNX model not found: {path}")
        if backend != "onnx":
            raise CheckpointError(f"{path} is an ONNX model: it runs with --backend onnx only")
        return OnnxClassifier(path, threads)
    if backend == "onnx":
        # Exported from the checkpoint at every start (well under a second), so it can never be stale.
        with tempfile.TemporaryDirectory() as tmp:
            return OnnxClassifier(export_onnx(path, Path(tmp) / "model.onnx"), threads)
    model, ckpt = load_model(path)
    return TorchClassifier(model, ckpt["classes"])

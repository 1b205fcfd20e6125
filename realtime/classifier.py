"""The emotion model behind a small interface, so the inference backend can be swapped.

Two backends run a checkpoint: PyTorch itself, and ONNX Runtime on a graph exported from the same checkpoint
when it is loaded (so it can never be stale). ONNX Runtime is the default: on a 2-core CPU it classified a
frame's faces 1.4-1.8x faster than PyTorch, with the same probabilities (to 1e-6).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from models.checkpoint import CheckpointError, load_model
from models.preprocessing import Preprocessing, faces_to_input

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "default.pt"
BACKENDS = ("onnx", "torch")


class EmotionClassifier(Protocol):
    classes: list[str]
    preprocessing: Preprocessing

    def predict(self, gray_faces: list[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, len(classes)) for N grayscale face crops of any size."""
        ...


class TorchClassifier:
    """A checkpoint's model on the CPU; all faces of a frame go through it as one batch."""

    def __init__(self, model: torch.nn.Module, classes: list[str]) -> None:
        self.model = model.eval()
        self.classes = list(classes)
        self.preprocessing: Preprocessing = model.preprocessing

    def prepare(self, gray_faces: list[np.ndarray]) -> torch.Tensor:
        """The model input for face crops: models.preprocessing with the checkpoint's parameters."""
        return faces_to_input(gray_faces, self.preprocessing)

    def predict(self, gray_faces: list[np.ndarray]) -> np.ndarray:
        if not gray_faces:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        with torch.inference_mode():
            return torch.softmax(self.model(self.prepare(gray_faces)), dim=1).numpy()


class OnnxClassifier(TorchClassifier):
    """The same model and preprocessing, run by ONNX Runtime."""

    def __init__(self, model: torch.nn.Module, classes: list[str], threads: int = 1) -> None:
        super().__init__(model, classes)
        import onnxruntime as ort

        size = self.preprocessing.size
        graph = io.BytesIO()
        try:
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
                torch.onnx.export(self.model, torch.zeros(1, 1, size, size), graph, input_names=["faces"],
                                  output_names=["logits"], dynamic_axes={"faces": {0: "n"}, "logits": {0: "n"}},
                                  dynamo=False)
        except Exception as exc:
            raise CheckpointError(f"cannot export this model to ONNX ({exc.__class__.__name__}: {exc}); "
                                  "use --backend torch") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(graph.getvalue(), options, providers=["CPUExecutionProvider"])

    def predict(self, gray_faces: list[np.ndarray]) -> np.ndarray:
        if not gray_faces:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        logits = self.session.run(None, {"faces": self.prepare(gray_faces).numpy()})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def load_classifier(checkpoint: str | Path | None = None, threads: int = 1,
                    backend: str = "onnx") -> TorchClassifier:
    """The classifier of a checkpoint file; weights/default.pt when none is given.

    ``threads``: CPU threads for inference (PyTorch's setting is process-wide). One is fastest for a frame's few
    faces: more gain little on such small batches and fight the detector and capture threads for the cores (on
    a busy 2-core machine, 2 PyTorch threads made a batch 10-40x slower than 1).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if checkpoint is None and not path.is_file():
        raise CheckpointError(f"the default emotion model {path} is missing: train one "
                              "(`python -m training.run --config training/configs/default.yaml`) and copy its "
                              "best checkpoint there, or pass --checkpoint PATH")
    torch.set_num_threads(threads)
    model, ckpt = load_model(path)
    if backend == "onnx":
        return OnnxClassifier(model, ckpt["classes"], threads)
    return TorchClassifier(model, ckpt["classes"])

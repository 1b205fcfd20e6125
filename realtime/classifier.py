"""The emotion model behind a small interface, so the inference backend can be swapped.

Two backends run a checkpoint: ONNX Runtime (the default: faster on a CPU, and it starts without importing
torch) and PyTorch itself. A .pt checkpoint runs on ONNX Runtime through its export: the ``.onnx`` beside it
when that was exported from exactly this checkpoint (its metadata records the checkpoint's SHA-256), else an
export made once and kept in the cache folder, so a changed checkpoint is never served from a stale export.
Several checkpoints run as one ensemble (models.ensemble: their calibrated probabilities averaged), on ONNX
Runtime as one graph exported into the cache under the members' SHA-256 digests. ONNX Runtime serves the int8
export by default (models.quantize: NAME.int8.onnx beside the checkpoint, or quantized once into the cache), the
fp32 one when asked. Each classifier also carries where its model stops reading faces well (the readability limits
stored with it, fercore.readability).
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from fercore.atomic import not_a_file
from fercore.calibration import softmax
from fercore.paths import one_or_more
from fercore.shipped import MODELS, ensemble_exports, is_shipped, model_files
from fercore.readability import ReadabilityLimits
from models.errors import CheckpointError, finite_probabilities
from models.onnx_runtime import (PRECISIONS, checkpoint_digest, ensemble_digest, export_digests, export_precision,
                                  open_session, read_metadata)
from models.preprocessing import Preprocessing, faces_to_input

BACKENDS = ("onnx", "torch")
ONNX_CACHE = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "fer-emotion" / "onnx"


def model_limits(description: dict) -> ReadabilityLimits:
    """The readability limits a checkpoint's (or export's) description stores; the defaults when it has none."""
    return ReadabilityLimits.from_dict(description["readability"]) if "readability" in description \
        else ReadabilityLimits()


class EmotionClassifier:
    """The interface of a backend: the checkpoint's classes, preprocessing and readability limits; all faces of a
    frame in one batch."""

    precision = "fp32"  # the model's arithmetic ("int8" for a quantized ONNX export)

    def __init__(self, classes: list[str], preprocessing: Preprocessing, temperature: float = 1.0,
                 limits: ReadabilityLimits | None = None) -> None:
        self.classes = list(classes)
        self.preprocessing = preprocessing
        self.temperature = temperature  # calibration: logits / temperature before the softmax
        self.limits = limits or ReadabilityLimits()  # where this model's labels stop being worth printing

    def prepare(self, gray_faces: list[np.ndarray]) -> np.ndarray:
        """The model input for face crops: models.preprocessing with the checkpoint's parameters."""
        return faces_to_input(gray_faces, self.preprocessing)

    def predict(self, gray_faces: list[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, len(classes)) for N grayscale face crops of any size."""
        if not gray_faces:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return finite_probabilities(self._probabilities(self.prepare(gray_faces)))

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # each backend runs its model here


class TorchClassifier(EmotionClassifier):
    """A checkpoint's model run by PyTorch on the CPU."""

    def __init__(self, model, classes: list[str], limits: ReadabilityLimits | None = None) -> None:
        super().__init__(classes, model.preprocessing, getattr(model, "temperature", 1.0), limits)
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
            limits = model_limits(meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: its model description is incomplete or invalid ({exc})") from exc
        if not 0.01 <= temperature <= 100:
            raise CheckpointError(f"{path}: temperature {temperature} is outside [0.01, 100]")
        super().__init__(classes, preprocessing, temperature, limits)
        self.precision = export_precision(meta)

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {"faces": batch})[0]
        with np.errstate(invalid="ignore", over="ignore"):  # overflowing logits: refused in predict
            return softmax(logits, self.temperature, dtype=np.float32)


def onnx_for(checkpoint: Path | Sequence[Path], precision: str = "fp32") -> Path:
    """An ONNX export of exactly this checkpoint, or of the ensemble of these checkpoints, at ``precision``: the one
    beside a single checkpoint if it matches (NAME.onnx, NAME.int8.onnx) or a shipped ensemble's
    (fercore.shipped.ensemble_exports), else a cached one (made on first use; that
    needs torch, once). An export is taken only if its metadata names these checkpoints' digests and this precision,
    so a changed checkpoint is never served from a stale export, nor a foreign file taken for an int8 one."""
    paths = [Path(p) for p in one_or_more(checkpoint)]
    digests = [checkpoint_digest(path) for path in paths]
    suffix = ".onnx" if precision == "fp32" else f".{precision}.onnx"
    if len(paths) == 1:
        candidates = [paths[0].with_name(paths[0].stem + suffix), ONNX_CACHE / f"{digests[0][:32]}{suffix}"]
    else:
        cached = ONNX_CACHE / f"ensemble-{ensemble_digest(digests)[:32]}{suffix}"
        candidates = [*ensemble_exports(paths, suffix), cached]
    for candidate in candidates:
        if candidate.is_file():
            try:
                meta = read_metadata(candidate)
            except CheckpointError:
                continue  # not ours or damaged: export afresh
            if export_digests(meta) == digests and export_precision(meta) == precision:
                return candidate
    if precision == "int8":
        return quantized(onnx_for(paths), candidates[-1])
    from models.onnx_export import export_onnx

    try:
        return export_onnx(paths, candidates[-1])
    except OSError:  # no writable cache folder: an export for this run only
        return export_onnx(paths, Path(tempfile.mkdtemp(prefix="fer-emotion-")) / "model.onnx")


def quantized(fp32: Path, output: Path) -> Path:
    """The int8 quantization of the fp32 export ``fp32``, written to ``output`` (to a folder for this run only when
    that cannot be written), calibrated on the fixed sample of FER-2013 training faces (models.quantize); ``fp32``
    itself, with a warning, where those faces are not found."""
    from models.quantize import CalibrationError, calibration_faces, quantize_onnx

    try:
        faces = calibration_faces()
    except CalibrationError as exc:
        warnings.warn(f"{exc}; the model runs in fp32", RuntimeWarning, stacklevel=2)
        return fp32
    try:
        return quantize_onnx(fp32, output, faces)
    except OSError:  # no writable cache folder
        return quantize_onnx(fp32, Path(tempfile.mkdtemp(prefix="fer-emotion-")) / "model.int8.onnx", faces)


def checkpoint_paths(checkpoint: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[Path]:
    """The model files ``checkpoint`` names: a shipped model's name (fercore.shipped; None is the default), one
    path, or several (an ensemble of .pt checkpoints). CheckpointError for a missing file, and for an empty list
    or an .onnx among several."""
    paths = model_files(checkpoint)
    if not paths:
        raise CheckpointError("no checkpoint given")
    for path in paths:
        if not path.is_file() and is_shipped(path):
            raise CheckpointError(f"the shipped emotion model {path} is missing: reinstall, or train one (`make "
                                  "train`) and copy the last stage's best checkpoint there, or pass --checkpoint PATH")
        if not path.is_file():
            what = "ONNX model" if path.suffix.lower() == ".onnx" else "checkpoint"
            hint = "" if path.suffix or path.exists() else f" (a shipped model's name is one of {', '.join(MODELS)})"
            raise CheckpointError(not_a_file(path, what) + hint)
        if len(paths) > 1 and path.suffix.lower() == ".onnx":
            raise CheckpointError(f"{path} is an ONNX model: an ensemble is made of .pt checkpoints (give the ones "
                                  "it was exported from, or export the ensemble with `python -m models.onnx_export "
                                  "A.pt B.pt -o ensemble.onnx` and pass that alone)")
    return paths


def load_classifier(checkpoint: str | os.PathLike | Sequence[str | os.PathLike] | None = None, threads: int = 1,
                    backend: str = "onnx", precision: str | None = None) -> EmotionClassifier:
    """The classifier of a checkpoint (.pt) or exported model (.onnx), or of the ensemble of several checkpoints
    (a list of .pt paths: their calibrated probabilities averaged); weights/default.pt when none is given.

    ``threads``: CPU threads for inference (PyTorch's setting is process-wide). ``precision``: "int8" (the ONNX
    backend's default: a quantized export, models.quantize) or "fp32" (PyTorch's only one); an .onnx file given
    itself runs as it was written.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend == "torch" and precision == "int8":
        raise ValueError("int8 runs on ONNX Runtime only: use the onnx backend, or fp32")
    paths = checkpoint_paths(checkpoint)
    if paths[0].suffix.lower() == ".onnx":
        if backend != "onnx":
            raise CheckpointError(f"{paths[0]} is an ONNX model: it runs with --backend onnx only")
        return OnnxClassifier(paths[0], threads)
    if backend == "onnx":
        return OnnxClassifier(onnx_for(paths, precision or "int8"), threads)
    import torch

    from models.ensemble import load_ensemble

    torch.set_num_threads(threads)
    model, description = load_ensemble(paths)
    return TorchClassifier(model, description["classes"], model_limits(description))

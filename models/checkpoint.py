"""Self-describing checkpoints: everything needed to rebuild and feed the model travels with its weights.

Layout (a plain dict of tensors and builtins, so ``torch.load(weights_only=True)`` reads it)::

    format      "fer-emotion-checkpoint"      version  1
    arch        registry name                 arch_args  constructor keyword arguments
    classes     label names in output order   preprocessing  Preprocessing.to_dict()
    temperature logits are divided by it before the softmax (1.0 until training.calibrate fits one)
    readability optional: the uncertain-face limits measured for it (fercore.readability; written by
                tools.readability_curves --store)
    config      the training config           epoch, metrics
    model       state dict                    training   optional resume state (optimizer, RNG, ...)
    weights_sha256  the SHA-256 of the state dict's names and bytes (weights_digest), written by every save
                and checked by every load, so a damaged file is refused instead of giving wrong answers
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from fercore.atomic import atomic_path, not_a_file
from fercore.classes import EMOTIONS
from fercore.readability import ReadabilityLimits
from models.description import INITIAL_WEIGHTS, check_arch_args, check_classes, check_temperature
from models.errors import CheckpointError
from models.preprocessing import Preprocessing
from models import build_model

FORMAT = "fer-emotion-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "arch", "arch_args", "classes", "preprocessing", "model")


def weights_digest(state: dict) -> str:
    """SHA-256 of a state dict: each name, dtype, shape and the tensor's bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save through a temporary file and a rename: a crash never leaves half a checkpoint. A checkpoint
    gets the digest of its weights (``weights_sha256``). A device or a pipe is refused (fercore.atomic): a
    checkpoint is a file to load again. torch.save writes into a Python file, so a full disk is an OSError (an
    OutputError in one line), not the RuntimeError of PyTorch's own writer."""
    if isinstance(obj, dict) and obj.get("format") == FORMAT and isinstance(obj.get("model"), dict):
        obj = {**obj, "weights_sha256": weights_digest(obj["model"])}
    with atomic_path(path, devices=False) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def make_checkpoint(model: nn.Module, classes: list[str] | tuple[str, ...], config: dict | None = None,
                    epoch: int = 0, metrics: dict | None = None, training: dict | None = None) -> dict:
    """The checkpoint of a model made by ``build_model`` (which recorded its architecture and arguments)."""
    model = getattr(model, "module", model)  # unwrap DDP
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "arch": model.arch,
        "arch_args": dict(model.arch_args),
        "classes": list(classes),
        "preprocessing": model.preprocessing.to_dict(),
        "temperature": float(getattr(model, "temperature", 1.0)),
        "config": config or {},
        "epoch": epoch,
        "metrics": metrics or {},
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if training is not None:
        ckpt["training"] = training
    return ckpt


def read_checkpoint(path: str | Path) -> dict:
    """Load and validate a checkpoint dict (tensors on the CPU): see validate_checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(not_a_file(path, "checkpoint"))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # PyTorch's message may advise weights_only=False, which must never be followed here
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: it is {file_kind(path)}; expected a "
                              ".pt file written by training.run") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of this project (no '{FORMAT}' marker); "
                              "train one with `python -m training.run` or use weights/ from the repository")
    validate_checkpoint(ckpt, str(path))
    return ckpt


# The first bytes of files that are given where a checkpoint is expected, and what they are.
_SIGNATURES = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
               (b"RIFF", "a RIFF file (a WebP image or an AVI video)"), (b"%PDF", "a PDF document"),
               (b"PK\x03\x04", "a zip archive that PyTorch cannot read (a damaged or cut checkpoint?)"),
               (b"\x80", "a pickle of objects other than tensors (not loaded: it could run code)"))


def file_kind(path: str | Path) -> str:
    """What a file that is not a readable checkpoint is, from its name and first bytes, for messages."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not head:
        return "an empty file"
    if path.suffix.lower() == ".onnx":
        return "an ONNX model (give the .pt checkpoint it was exported from)"
    kind = next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)
    if kind:
        return kind
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "a file of another format"
    return "a text file"


def validate_checkpoint(ckpt: dict, where: str = "the checkpoint") -> None:
    """Everything a checkpoint says, checked before a model is built from it (CheckpointError naming ``where``
    and the fault): the required keys, an integer version this code reads, a known architecture with arguments
    its constructor takes in sensible ranges, distinct class names one per output, valid preprocessing and
    temperature, valid readability limits where it has them, and finite weights. That the weights fit the
    architecture is checked when it is built (check_state_dict)."""
    missing = [key for key in REQUIRED if key not in ckpt]
    if missing:
        raise CheckpointError(f"{where} lacks {', '.join(map(repr, missing))}")
    version = ckpt["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{where}: version must be a whole number, got {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{where} has checkpoint version {version}; this code reads up to {VERSION}")
    try:
        args = check_arch_args(ckpt["arch"], architecture_args(ckpt["arch_args"]))
        check_classes(ckpt["classes"], args.get("num_classes", len(EMOTIONS)))
        Preprocessing.from_dict(ckpt["preprocessing"])
        check_temperature(ckpt.get("temperature", 1.0))
        if "readability" in ckpt:
            ReadabilityLimits.from_dict(ckpt["readability"])
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    for key, kind in (("epoch", int), ("metrics", dict), ("config", dict), ("training", dict)):
        if key in ckpt and (not isinstance(ckpt[key], kind) or isinstance(ckpt[key], bool)):
            raise CheckpointError(f"{where}: {key} must be a {kind.__name__}, got {type(ckpt[key]).__name__}")
    state = ckpt["model"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{where}: model must be a state dict (names to tensors)")
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: weight {name} holds NaN or infinite values")
    if "weights_sha256" in ckpt and ckpt["weights_sha256"] != weights_digest(state):
        raise CheckpointError(f"{where} is damaged: its weights do not match the digest saved with them "
                              "(copy it again, or re-download the repository's weights/)")


def data_to_model_order(classes: list[str], where: str = "the checkpoint") -> np.ndarray:
    """The output index of each data label (FER-2013's classes in fercore.classes.EMOTIONS order) in a model whose
    outputs are ``classes``: ``order[labels]`` are the labels in the model's order, matched by name, so a checkpoint
    that lists its classes in another order is measured right. CheckpointError when its classes are not those."""
    if sorted(classes) != sorted(EMOTIONS):
        raise CheckpointError(f"{where} has the classes {', '.join(classes)}; the data's are {', '.join(EMOTIONS)}: "
                              "it can only be measured on data of the same classes")
    return np.array([list(classes).index(name) for name in EMOTIONS], dtype=np.int64)


def architecture_args(arch_args: Any) -> Any:
    """A checkpoint's arguments without those that choose initial weights (INITIAL_WEIGHTS): rebuilding from a
    checkpoint never downloads ImageNet weights nor reads a file it names."""
    if not isinstance(arch_args, dict):
        return arch_args
    return {k: v for k, v in arch_args.items() if k not in INITIAL_WEIGHTS}


def state_dict_mismatch(model: nn.Module, state: dict) -> str | None:
    """How ``state`` differs from ``model``'s weight names and shapes (the first three differences), or None."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"missing {k}" for k in want if k not in have]
    problems += [f"unexpected {k}" for k in have if k not in want]
    problems += [f"{k} has shape {list(have[k])}, the model {list(want[k])}" for k in want
                 if k in have and have[k] != want[k]]
    if not problems:
        return None
    return "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")


def check_state_dict(model: nn.Module, state: dict, where: str) -> None:
    """CheckpointError unless ``state`` has exactly ``model``'s weight names and shapes."""
    mismatch = state_dict_mismatch(model, state)
    if mismatch:
        raise CheckpointError(f"{where}: the weights do not fit {model.arch} {model.arch_args}: {mismatch}")


def model_from_checkpoint(ckpt: dict, where: str = "the checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint describes, with its weights, in eval mode. Never with pretrained weights
    or a weights file, whatever its arguments say."""
    validate_checkpoint(ckpt, where)
    preprocessing = Preprocessing.from_dict(ckpt["preprocessing"])
    model = build_model(ckpt["arch"], pretrained=False, weights_path=None, **architecture_args(ckpt["arch_args"]))
    if preprocessing.size != model.preprocessing.size:
        raise CheckpointError(f"{where}: preprocessing size {preprocessing.size} does not match the model's "
                              f"input size {model.preprocessing.size}")
    check_state_dict(model, ckpt["model"], where)
    model.load_state_dict(ckpt["model"])
    model.preprocessing = preprocessing
    model.temperature = float(ckpt.get("temperature", 1.0))
    return model.eval()


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Model (eval mode, CPU) and its checkpoint metadata from a checkpoint file."""
    ckpt = read_checkpoint(path)
    return model_from_checkpoint(ckpt, str(path)), ckpt

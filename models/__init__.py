"""Model architectures, the registry that builds them by name, and self-describing checkpoints.

The registry (and with it torch) loads on first use, so that ``models.onnx_runtime`` and
``models.preprocessing`` serve the realtime app without importing torch.
"""
from __future__ import annotations

from typing import Any

__all__ = ["build_model", "list_models", "register_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from models import cnn, registry, resnet  # noqa: F401  (importing the architectures registers them)

        return getattr(registry, name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")

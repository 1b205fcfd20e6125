"""One factory for every architecture, so configs and checkpoints name a model by string."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make a model constructor buildable as ``build_model(name, **kwargs)``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, pretrained: bool = False, weights_path: str | None = None, **kwargs) -> nn.Module:
    """Build a registered model from its architecture arguments.

    ``pretrained``/``weights_path`` only choose the initial weights; they are not architecture arguments,
    so a checkpoint stores ``kwargs`` alone and rebuilds with ``pretrained=False``. Every model has a
    ``preprocessing`` attribute describing its input, and ``arch`` and ``arch_args`` naming how it was built.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    model = _REGISTRY[name](pretrained=pretrained, weights_path=weights_path, **kwargs)
    model.arch, model.arch_args = name, dict(kwargs)  # what a checkpoint needs to build it again
    return model

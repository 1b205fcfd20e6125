"""Model architectures, the registry that builds them by name, and self-describing checkpoints."""
from models.registry import build_model, list_models, register_model

# Importing the architecture modules registers them.
from models import cnn as _cnn, resnet as _resnet  # noqa: E402,F401

__all__ = ["build_model", "list_models", "register_model"]

"""The user-error types of training, importable without torch or OpenCV."""
from __future__ import annotations


class ConfigError(ValueError):
    """A training config (file, override or output folder) the run cannot use."""


class DataError(ValueError):
    """Training data that cannot be read: the message names the file and line or image."""

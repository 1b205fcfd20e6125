"""Errors of loading a model, importable without torch (the ONNX Runtime path of the app runs without it)."""


class CheckpointError(ValueError):
    """The file is missing, unreadable, or not a checkpoint (or ONNX export) written by this project."""

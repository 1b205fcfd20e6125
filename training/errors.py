"""The user-error types of training, importable without torch or OpenCV, and the guard that lets an entry point
be stopped with Ctrl-C while its libraries load.

``python -m training.run`` imports torch, OpenCV and matplotlib for seconds before its ``main`` (and with it
fercore.cli.run, which turns Ctrl-C into exit status 130) starts; an entry point wraps those imports in
``interruptible_imports()`` so that a Ctrl-C then ends the same way, quietly with 130, not with a traceback
from inside torch.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


class ConfigError(ValueError):
    """A training config (file, override or output folder) the run cannot use."""


class DataError(ValueError):
    """Training data that cannot be read: the message names the file and line or image."""


@contextmanager
def interruptible_imports() -> Iterator[None]:
    """Ctrl-C inside the block: 'interrupted' on stderr and exit status 130, as fercore.cli.run gives later."""
    try:
        yield
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None

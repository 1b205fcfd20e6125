"""The failures a user can fix, raised by the library and reported by the commands in one ``error:`` line."""
from __future__ import annotations

from pathlib import Path

from fercore.atomic import printable

from models.errors import CheckpointError
from realtime.detector import DetectorError
from realtime.photos import ImageError
from realtime.video_io import CaptureError, VideoError


class InputError(ValueError):
    """A bad input path or argument the user can fix (message says how)."""


USER_ERRORS = (CheckpointError, DetectorError, VideoError, CaptureError, ImageError, InputError)


def resolved(path: Path) -> Path:
    """``path`` made absolute with its links followed; InputError for a loop of links (Python raises
    RuntimeError there) or a path the system cannot follow."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:
        raise InputError(f"cannot follow {printable(path)}: {exc.strerror if isinstance(exc, OSError) else exc}") \
            from exc

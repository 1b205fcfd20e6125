"""The failures a user can fix, raised by the library and reported by the commands in one ``error:`` line."""
from __future__ import annotations

from models.errors import CheckpointError
from realtime.detector import DetectorError
from realtime.photos import ImageError
from realtime.video_io import CaptureError, VideoError


class InputError(ValueError):
    """A bad input path or argument the user can fix (message says how)."""


USER_ERRORS = (CheckpointError, DetectorError, VideoError, CaptureError, ImageError, InputError)

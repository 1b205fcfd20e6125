"""The realtime app: faces found by MediaPipe, classified by the emotion model, tracked and drawn.

Every entry point (webcam, annotate, evaluate, benchmark) runs the same ``pipeline.Pipeline``. From Python,
``from realtime import EmotionRecognizer`` (realtime.api) runs it in one call. The names below load on first use,
so importing a light module of this package (tracking, results) loads no OpenCV, MediaPipe or model.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from realtime.api import EmotionRecognizer, to_bgr
    from realtime.photos import ImageError
    from realtime.results import FaceResult, FrameResult
    from realtime.video_io import CaptureError, VideoError

_EXPORTS = {"EmotionRecognizer": "realtime.api", "to_bgr": "realtime.api", "FaceResult": "realtime.results",
            "FrameResult": "realtime.results", "ImageError": "realtime.photos", "VideoError": "realtime.video_io",
            "CaptureError": "realtime.video_io"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

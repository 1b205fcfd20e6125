"""The emotion classes, the folder names people give them, and the image files the project reads."""
from __future__ import annotations

# FER-2013's label order (the integer in the csv files); never the alphabetical folder order.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Folder names seen in the wild for each class (Kaggle uses the first; some copies use adjectives).
FOLDER_ALIASES = {"disgusted": "disgust", "fearful": "fear", "surprised": "surprise", "anger": "angry",
                  "happiness": "happy", "sadness": "sad"}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm"})


class UnknownEmotionError(ValueError):
    """A folder name that is no emotion class nor an alias of one."""


def class_index(folder_name: str) -> int:
    """The label of an emotion folder (``happy``, ``Happiness``, ``surprised`` ...)."""
    name = FOLDER_ALIASES.get(folder_name.lower(), folder_name.lower())
    if name not in EMOTIONS:
        raise UnknownEmotionError(f"unknown emotion folder {folder_name!r}; expected one of {', '.join(EMOTIONS)}")
    return EMOTIONS.index(name)

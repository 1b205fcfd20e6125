"""Names of the test-time augmentation modes (the views themselves are models.inference's), here so that
a config can be validated without loading torch."""
from __future__ import annotations

# none: the image; flip: the image and its mirror; tencrop: five crops of the padded image and their mirrors.
TTA_MODES: tuple[str, ...] = ("none", "flip", "tencrop")

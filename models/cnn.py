"""The seed's VGG-style CNN for 48x48 grayscale faces, with a width multiplier for cheaper variants."""
from __future__ import annotations

import torch
import torch.nn as nn

from models.preprocessing import Preprocessing
from fercore.classes import EMOTIONS
from models.registry import register_model


def _block(cin: int, cout: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (cin, cout):
        layers += [nn.Conv2d(c, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2), nn.Dropout(dropout))


class EmotionCNN(nn.Module):
    """4 blocks of 2x(conv3x3-BN-ReLU) + max-pool + dropout; classifier flat-512-256-classes.

    ``width=1.0`` is the seed network exactly (widths 64-128-256-512, 4608-512-256-7, ~7.18 M parameters).
    """

    def __init__(self, num_classes: int = len(EMOTIONS), width: float = 1.0, conv_dropout: float = 0.3,
                 fc_dropout: float = 0.5, input_size: int = 48) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        widths = [max(1, round(w * width)) for w in (64, 128, 256, 512)]
        fc = [max(1, round(w * width)) for w in (512, 256)]
        blocks, cin = [], 1
        for w in widths:
            blocks.append(_block(cin, w, conv_dropout))
            cin = w
        self.features = nn.Sequential(*blocks)
        flat = widths[-1] * (input_size // 16) ** 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, fc[0]), nn.BatchNorm1d(fc[0]), nn.ReLU(inplace=True), nn.Dropout(fc_dropout),
            nn.Linear(fc[0], fc[1]), nn.BatchNorm1d(fc[1]), nn.ReLU(inplace=True), nn.Dropout(fc_dropout),
            nn.Linear(fc[1], num_classes),
        )
        self.preprocessing = Preprocessing(size=input_size, mean=0.5, std=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("cnn")
def cnn(pretrained: bool = False, weights_path: str | None = None, **kwargs) -> EmotionCNN:
    if pretrained or weights_path:
        raise ValueError("the cnn model has no pretrained weights; set model.pretrained: false")
    return EmotionCNN(**kwargs)

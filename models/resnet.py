"""ImageNet ResNet-18 adapted to 48x48 grayscale faces.

The seed's plain fine-tune at 48x48 stalled at 41%: the ImageNet stem shrinks a 48-pixel face to 12x12
before the first block. Two fixes are offered: upsample the input (``input_size`` 96 or 224) or replace
the stem by a 3x3 stride-1 convolution without max-pool (``stem: small``).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.preprocessing import Preprocessing
from fercore.classes import EMOTIONS
from fercore.cli import CommandError
from models.registry import register_model


class WeightsUnavailable(CommandError, RuntimeError):
    """The ImageNet weights a pretrained ResNet starts from cannot be had (no internet, no cached copy): one line
    that says where to put them."""


def imagenet_weights():
    """torchvision's ImageNet weights entry (imported here: torchvision adds seconds to every app start)."""
    from torchvision.models import ResNet18_Weights

    return ResNet18_Weights.IMAGENET1K_V1


def imagenet_cache_path() -> Path:
    """Where torchvision looks for (and downloads) the ImageNet weights: torch's hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(imagenet_weights().url).name


def load_imagenet_state_dict(weights_path: str | None) -> dict[str, torch.Tensor]:
    """ImageNet weights from a local file, else torchvision's weights API (hub cache, then download)."""
    if weights_path:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ResNet-18 weights file not found: {path}")
        return torch.load(path, map_location="cpu", weights_only=True)
    weights = imagenet_weights()
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # no network: urllib raises several types
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise WeightsUnavailable(
            f"could not get the ImageNet ResNet-18 weights ({reason}): put {Path(weights.url).name} (from "
            f"{weights.url}) at {imagenet_cache_path()}, or give a local copy with model.weights_path=FILE, or set "
            "model.pretrained=false to train from scratch") from exc


class EmotionResNet18(nn.Module):
    def __init__(self, num_classes: int = len(EMOTIONS), input_size: int = 48, stem: str = "imagenet",
                 head_hidden: int = 256, dropout: float = 0.5,
                 imagenet_state: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        from torchvision.models import resnet18 as tv_resnet18

        if stem not in ("imagenet", "small"):
            raise ValueError(f"stem must be 'imagenet' or 'small', got {stem!r}")
        net = tv_resnet18(weights=None)
        if imagenet_state is not None:
            net.load_state_dict(imagenet_state)
        # Grayscale input without waste: a gray image replicated to RGB meets conv1 as the sum of its
        # three channel filters, so fold them into one input channel.
        folded = net.conv1.weight.detach().sum(dim=1, keepdim=True)
        if stem == "imagenet":
            net.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
            net.conv1.weight.data.copy_(folded)
        else:
            net.conv1 = nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        features = net.fc.in_features
        net.fc = nn.Sequential(
            nn.Linear(features, head_hidden), nn.BatchNorm1d(head_hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(head_hidden, num_classes),
        )
        self.net = net
        self.input_size = input_size
        # ImageNet's mean/std averaged over RGB, matching the folded first layer.
        self.preprocessing = Preprocessing(size=48, mean=0.449, std=0.226)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.net.named_parameters() if not n.startswith("fc.")]

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.net.fc.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.net(x)


@register_model("resnet18")
def resnet18(pretrained: bool = False, weights_path: str | None = None, **kwargs) -> EmotionResNet18:
    state = load_imagenet_state_dict(weights_path) if (pretrained or weights_path) else None
    return EmotionResNet18(imagenet_state=state, **kwargs)

"""Print training throughput (images/s) of each model and of the data pipeline on this machine.

    python -m training.benchmark                 # all models, CPU (or CUDA when present)
    python -m training.benchmark --models cnn-0.5 --steps 10

A benchmark, not a test: figures depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

from fercore.cli import interruptible_imports

with interruptible_imports():
    import torch

    from fercore import cli
    from models import build_model
    from models.preprocessing import Preprocessing
    from training.augment import BatchAugment
    from training.config import DEFAULTS
    from training.losses import FocalLoss

MODELS = {  # name on the command line: (architecture, its arguments)
    "cnn-1.0": ("cnn", {"width": 1.0}),  # the CNN at full width
    "cnn-0.5": ("cnn", {"width": 0.5}),  # the fast model's width
    "resnet18-48-imagenet": ("resnet18", {"stem": "imagenet", "input_size": 48}),
    "resnet18-48-small": ("resnet18", {"stem": "small", "input_size": 48}),  # 3x3 stem, no max-pool
    "resnet18-96-imagenet": ("resnet18", {"stem": "imagenet", "input_size": 96}),  # faces upsampled to 96
}


def timed(step: Callable[[], object], steps: int, device: torch.device, warmup: int = 2) -> list[float]:
    """Seconds of each of ``steps`` calls of ``step``, after ``warmup`` untimed ones (first-call allocations)."""
    seconds = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    return seconds


def rates(seconds: list[float], batch: int) -> tuple[float, float]:
    """Images per second of the median step and over all steps (the mean)."""
    return batch / statistics.median(seconds), batch * len(seconds) / sum(seconds)


def train_images_per_second(name: str, args: dict, batch: int, steps: int, device: torch.device,
                            channels_last: bool = True) -> tuple[float, float]:
    """As the trainer runs (train.channels_last): NHWC tensors unless ``channels_last`` is False."""
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(name, **args).to(device).train().to(memory_format=memory)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = FocalLoss()
    x = torch.randn(batch, 1, 48, 48, device=device).contiguous(memory_format=memory)
    y = torch.randint(0, 7, (batch,), device=device)

    def step() -> None:
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return rates(timed(step, steps, device), batch)


def augment_images_per_second(batch: int, steps: int, device: torch.device, recipe: dict) -> tuple[float, float]:
    aug = BatchAugment(recipe, Preprocessing())
    faces = torch.randint(0, 256, (batch, 48, 48), dtype=torch.uint8, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    return rates(timed(lambda: aug(faces, gen), steps, device), batch)


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("training.benchmark", __doc__)
    g = ap.add_argument_group("benchmark")
    g.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), metavar="MODEL",
                   help=f"models to time: {', '.join(MODELS)} (default: all; cnn-W is the CNN at width W, "
                        "resnet18-SIZE-STEM the ResNet-18 on SIZE-pixel faces with the ImageNet or a 3x3 stem)")
    g.add_argument("--batch", type=cli.number(1, kind=int), default=64, help="images per step (default 64)")
    g.add_argument("--steps", type=cli.number(1, kind=int), default=5,
                   help="timed training steps per model, after two warm-up steps (default 5; the data pipeline "
                        "runs ten times as many)")
    g.add_argument("--device", type=cli.device_name, default="auto",
                   help="cpu, cuda, cuda:N, or auto: cuda when there is a GPU (default auto)")
    g.add_argument("--contiguous", action="store_true",
                   help="time the models with NCHW tensors (train.channels_last false) instead of NHWC")
    return ap


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    device = torch.device(cli.resolve_device(args.device, torch.cuda.device_count()))
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{'NCHW' if args.contiguous else 'NHWC (channels-last)'} tensors")
    seed = DEFAULTS["augment"]
    strong = dict(seed, equalize_p=0.2, brightness=0.4, contrast=0.4)
    print("images/s of the median step (mean over all steps in brackets), after two warm-up steps")
    for label, recipe in (("seed augmentation", seed), ("resnet augmentation", strong)):
        median, mean = augment_images_per_second(args.batch, args.steps * 10, device, recipe)
        print(f"data pipeline ({label}): {median:10.0f} images/s ({mean:.0f})")
    for key in args.models:
        name, model_args = MODELS[key]
        median, mean = train_images_per_second(name, model_args, args.batch, args.steps, device,
                                               channels_last=not args.contiguous)
        print(f"train {key:30} {median:8.1f} images/s ({mean:.1f})  ({28709 / median / 60:5.1f} min per FER-2013 "
              "epoch)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark as the command line says; returns the exit status (fercore.cli)."""
    return cli.run(command, argv)


if __name__ == "__main__":
    sys.exit(main())

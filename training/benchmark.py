"""Print training throughput (images/s) of each model and of the data pipeline on this machine.

    python -m training.benchmark                 # all models, CPU (or CUDA when present)
    python -m training.benchmark --models cnn:0.5 --steps 10

A benchmark, not a test: figures depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import time

import torch

from models import build_model
from models.preprocessing import Preprocessing
from training.augment import BatchAugment
from training.config import DEFAULTS
from training.losses import FocalLoss

MODELS = {
    "cnn:1.0": ("cnn", {"width": 1.0}),
    "cnn:0.5": ("cnn", {"width": 0.5}),
    "resnet18 (48, imagenet stem)": ("resnet18", {"stem": "imagenet", "input_size": 48}),
    "resnet18 (48, 3x3 stem)": ("resnet18", {"stem": "small", "input_size": 48}),
    "resnet18 (96, imagenet stem)": ("resnet18", {"stem": "imagenet", "input_size": 96}),
}


def train_images_per_second(name: str, args: dict, batch: int, steps: int, device: torch.device) -> float:
    model = build_model(name, **args).to(device).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = FocalLoss()
    x = torch.randn(batch, 1, 48, 48, device=device)
    y = torch.randint(0, 7, (batch,), device=device)
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def augment_images_per_second(batch: int, steps: int, device: torch.device, recipe: dict) -> float:
    aug = BatchAugment(recipe, Preprocessing())
    faces = torch.randint(0, 256, (batch, 48, 48), dtype=torch.uint8, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    aug(faces, gen)
    start = time.perf_counter()
    for _ in range(steps):
        aug(faces, gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    seed = DEFAULTS["augment"]
    strong = dict(seed, equalize_p=0.2, brightness=0.4, contrast=0.4)
    for label, recipe in (("seed augmentation", seed), ("resnet augmentation", strong)):
        ips = augment_images_per_second(args.batch, args.steps * 10, device, recipe)
        print(f"data pipeline ({label}): {ips:10.0f} images/s")
    for key in args.models:
        name, model_args = MODELS[key]
        ips = train_images_per_second(name, model_args, args.batch, args.steps, device)
        print(f"train {key:30} {ips:8.1f} images/s  ({28709 / ips / 60:5.1f} min per FER-2013 epoch)")


if __name__ == "__main__":
    main()

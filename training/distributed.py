"""This process's place in a torchrun job (torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``), the device
it trains on, and the values its processes agree on; run directly, it is rank 0 of 1 and nothing is exchanged."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from training.errors import ConfigError


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when run directly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    dist = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device_pref != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(dist.local_rank)
    torch_dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist


def pick_device(pref: str, dist: Dist) -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but CUDA is not available; use train.device=auto or cpu")
    if pref in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def any_rank(flag: bool, dist: Dist, device: torch.device) -> bool:
    """``flag`` of this process or of any other, so every process leaves the loop at the same batch."""
    if dist.world == 1:
        return flag
    total = torch.tensor([float(flag)], device=device)
    torch_dist.all_reduce(total)
    return bool(total.item())


def sum_across_processes(values: list[float], dist: Dist, device: torch.device) -> torch.Tensor:
    total = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.world > 1:
        torch_dist.all_reduce(total)
    return total

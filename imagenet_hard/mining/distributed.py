"""Running under ``torchrun``: rank, world size and the process group, or a single process.

torch.distributed is the engine (no home-made scheduler). ``torchrun`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; shards go to ranks round-robin and rank 0 merges. The group
uses gloo on the CPU and NCCL on CUDA, with a long timeout because ranks wait for each other only
at the end of the run. torch is imported inside the functions, so importing the mining package
stays light (the CLI's start-up and ``--help``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from .. import devices

if TYPE_CHECKING:
    import torch

#: How long a rank may wait at the final barrier for the slowest rank.
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process created the group and destroys it at the end

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def mine(self, shard: int) -> bool:
        """Whether this rank judges ``shard`` (round-robin by shard number)."""
        return shard % self.world == self.rank


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """:func:`imagenet_hard.devices.resolve_device` for this rank, made the current CUDA device."""
    import torch

    dev = devices.resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def setup(device) -> tuple[Ranks, torch.device]:
    """Join the torchrun process group when there is one; the device this rank uses."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), resolve_device(device)
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT,
                                device_id=dev if dev.type == "cuda" else None)
        owns = True
    return Ranks(dist.get_rank(), dist.get_world_size(), local, owns), dev


def broadcast_error(ranks: Ranks, message: str | None) -> str | None:
    """Rank 0's error message (or None) on every rank, so all stop together."""
    if not ranks.distributed:
        return message
    import torch.distributed as dist

    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_counts(ranks: Ranks, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over ranks (for the summary's throughput figures)."""
    if not ranks.distributed:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        import torch.distributed as dist

        dist.barrier()


def teardown(ranks: Ranks) -> None:
    if ranks.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()


def is_rank_zero() -> bool:
    """True outside torchrun and on its rank 0 (the one that prints)."""
    return int(os.environ.get("RANK", "0")) == 0

"""Several processes training one model (``torchrun``): ranks, buffers and barriers.

Under ``torchrun --nproc_per_node=N -m fer_utils.train`` each rank trains on its own shard of
every epoch; these helpers find the rank, keep BatchNorm statistics identical across ranks and
wait for each other. With one process they do nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())


def sync_buffers(model: nn.Module, d: Dist) -> None:
    """Give every rank rank 0's BatchNorm statistics (DDP syncs buffers only at the start of a forward)."""
    if d.world > 1:
        import torch.distributed as dist

        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()

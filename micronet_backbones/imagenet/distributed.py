"""Process-group plumbing for ``torchrun``: NCCL on GPUs, gloo on CPUs, one process without it.

``torchrun`` (``python -m torch.distributed.run``) sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` for every process, on one machine or many; a plain ``python`` launch has none of
them and runs as a single process without a process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = [
    "DistributedContext",
    "broadcast_buffers",
    "setup_distributed",
    "shutdown_distributed",
    "all_reduce_sum",
    "ShardSampler",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs.

    Attributes:
        rank, world_size: global rank and number of processes.
        local_rank: rank on this machine (picks the GPU).
        device: the process's device (``cuda:<local_rank>`` or ``cpu``).
        backend: ``"nccl"``, ``"gloo"`` or ``None`` (single process, no process group).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def setup_distributed(device: str = "auto") -> DistributedContext:
    """Join the process group that ``torchrun`` describes (if any) and pick the device.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cuda"`` or ``"cpu"``.
    """
    if device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be 'auto', 'cuda' or 'cpu', got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device")

    rank, world_size, local_rank = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    launched = rank is not None and world_size is not None
    if not launched:
        rank, world_size, local_rank = 0, 1, 0
    if local_rank is None:
        local_rank = 0

    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")

    backend = None
    if launched:
        backend = "nccl" if use_cuda else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, device_id=torch_device if use_cuda else None)
    return DistributedContext(rank, world_size, local_rank, torch_device, backend)


def shutdown_distributed(context: DistributedContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(module: torch.nn.Module, context: DistributedContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) into every process's ``module``.

    DDP broadcasts them at the start of each forward, so after the last step of an epoch every
    process holds the update of its own last batch. Rank 0's are the ones a checkpoint saves:
    evaluating with them makes the logged validation figures those of the checkpoint.
    """
    if context.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def all_reduce_sum(values: list[float], context: DistributedContext) -> list[float]:
    """Sum a list of numbers over every process (float64; identity for one process)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=context.device)
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` of a dataset of ``length`` items, in order.

    Unlike ``DistributedSampler`` it pads nothing, so the shards of all ranks together hold every
    item exactly once: summed counts give exact validation accuracy.
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size}")
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self):
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))

"""Process-group queries and collectives as MMEngine names them, over ``torch.distributed``."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as torch_dist


def is_distributed() -> bool:
    """True when a process group is initialised (by ``accelerate launch``)."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_rank(group: Any = None) -> int:
    return torch_dist.get_rank(group) if is_distributed() else 0


def get_world_size(group: Any = None) -> int:
    return torch_dist.get_world_size(group) if is_distributed() else 1


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0)) if is_distributed() else 0


def get_dist_info(group: Any = None) -> tuple[int, int]:
    """(rank, world_size)."""
    return get_rank(group), get_world_size(group)


def is_main_process(group: Any = None) -> bool:
    return get_rank(group) == 0


def master_only(func: Callable) -> Callable:
    """Run `func` on the main process only (others return None)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs) if is_main_process() else None

    return wrapper


def barrier(group: Any = None) -> None:
    if is_distributed():
        torch_dist.barrier(group)


def all_reduce(data: torch.Tensor, op: str = "sum", group: Any = None) -> None:
    """In place; ``op`` is ``'sum'``, ``'mean'``, ``'max'``, ``'min'`` or ``'product'``."""
    if not is_distributed():
        return
    ops = {"sum": "SUM", "mean": "SUM", "max": "MAX", "min": "MIN", "product": "PRODUCT"}
    if op.lower() not in ops:
        raise ValueError(f"all_reduce op {op!r} is unknown; accepted: {sorted(ops)}")
    torch_dist.all_reduce(data, getattr(torch_dist.ReduceOp, ops[op.lower()]), group)
    if op.lower() == "mean":
        data.div_(get_world_size(group))


def all_gather(data: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
    """The tensor of every process, in rank order (same shape on each)."""
    if not is_distributed():
        return [data]
    out = [torch.empty_like(data) for _ in range(get_world_size(group))]
    torch_dist.all_gather(out, data, group)
    return out


def all_gather_object(data: Any, group: Any = None) -> list:
    if not is_distributed():
        return [data]
    out: list = [None] * get_world_size(group)
    torch_dist.all_gather_object(out, data, group)
    return out


def broadcast(data: torch.Tensor, src: int = 0, group: Any = None) -> None:
    """In place, from rank `src` to all."""
    if is_distributed():
        torch_dist.broadcast(data, src, group)


def broadcast_object_list(data: list, src: int = 0, group: Any = None) -> None:
    if is_distributed():
        torch_dist.broadcast_object_list(data, src, group)


def collect_results(results: list, size: int, device: str = "cpu", tmpdir: Any = None) -> list:
    """Every process's `results`, interleaved back into dataset order (as a distributed
    sampler deals them out), cut to `size` (samplers pad every
    process to the same length); on the main process, None elsewhere."""
    parts = all_gather_object(results)
    if not is_main_process():
        return None
    ordered = [item for group in zip(*parts) for item in group]
    return ordered[:size]

"""Copy the next batch to the device while the current step runs.

On CUDA the copy of batch ``i + 1`` is queued on a side stream before batch ``i`` is
handed to the step, so the host-to-device transfer overlaps the step's kernels instead of
sitting in front of them on the compute stream. Elsewhere (CPU, MPS, XLA) batches pass
through unchanged and the data preprocessor moves them, as without prefetching.

Every batch is yielded exactly once, in the order the loader gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch

__all__ = ["lookahead", "move_to_device", "prefetch_to_device"]


def prefetch_to_device(
    batches: Iterable, device: torch.device | str | None, pin_memory: bool = True
) -> Iterable:
    """Iterate `batches` with each batch's tensors already on `device`, one batch ahead.

    Args:
        batches: any iterable of batches (a prepared DataLoader, a generator).
        device: where the step runs. ``None`` or a non-CUDA device returns `batches`
            itself: nothing is copied and nothing is wrapped.
        pin_memory: page-lock host tensors that are not pinned yet, so their copy is
            asynchronous (a DataLoader with ``pin_memory=True`` already did it).

    Returns:
        An iterable of the same batches, in order, each once.

    Example:
        >>> for batch in prefetch_to_device(loader, torch.device('cuda')):
        ...     loss = model(**batch)   # batch tensors are on the GPU already
    """
    if device is None:
        return batches
    device = torch.device(device)
    if device.type != "cuda":
        return batches
    return _cuda_prefetch(batches, device, pin_memory)


def _cuda_prefetch(batches: Iterable, device: torch.device, pin_memory: bool) -> Iterator:
    stream = torch.cuda.Stream(device=device)
    compute = torch.cuda.current_stream(device)

    def load(batch: Any) -> Any:
        # No wait on the compute stream: the copies write into fresh blocks, and blocks of
        # earlier batches are reused only after the work recorded on them (record_stream).
        with torch.cuda.stream(stream):
            return move_to_device(batch, device, non_blocking=True, pin_memory=pin_memory)

    def ready(batch: Any) -> Any:
        compute.wait_stream(stream)
        _record_stream(batch, compute)  # memory made on the side stream is used on this one
        return batch

    return lookahead(batches, load, ready)


def lookahead(batches: Iterable, load: Callable, ready: Callable) -> Iterator:
    """Yield ``ready(load(b))`` for each batch, calling `load` on the next batch before the
    current one is yielded: its work (a copy queued on a side stream) then runs during the
    caller's step. Every batch is loaded once and yielded once, in order.
    """
    iterator = iter(batches)
    try:
        upcoming = load(next(iterator))
    except StopIteration:
        return
    for batch in iterator:
        current = ready(upcoming)
        upcoming = load(batch)  # queued before the step of `current` is launched
        yield current
    yield ready(upcoming)


def move_to_device(
    data: Any, device: torch.device, non_blocking: bool = False, pin_memory: bool = False
) -> Any:
    """`data` with every tensor in nested dicts/lists/tuples on `device` (same containers)."""
    if isinstance(data, torch.Tensor):
        if data.device == device:
            return data
        if pin_memory and data.device.type == "cpu" and not data.is_pinned():
            data = data.pin_memory()
        return data.to(device, non_blocking=non_blocking)
    if isinstance(data, Mapping):
        moved = {k: move_to_device(v, device, non_blocking, pin_memory) for k, v in data.items()}
        if type(data) is dict:
            return moved
        try:
            return type(data)(moved)
        except TypeError:
            return moved
    if isinstance(data, (list, tuple)):
        items = [move_to_device(v, device, non_blocking, pin_memory) for v in data]
        if hasattr(data, "_fields"):  # a namedtuple takes its fields positionally
            return type(data)(*items)
        return type(data)(items)
    return data


def _record_stream(data: Any, stream: torch.cuda.Stream) -> None:
    if isinstance(data, torch.Tensor):
        if data.is_cuda:
            data.record_stream(stream)
    elif isinstance(data, Mapping):
        for value in data.values():
            _record_stream(value, stream)
    elif isinstance(data, (list, tuple)):
        for value in data:
            _record_stream(value, stream)

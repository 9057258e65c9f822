"""`AccumulationWindows`: where a run is in its gradient-accumulation windows, and the size
of the window each micro-batch belongs to (what its loss is divided by).

Windows follow the run's micro-batch count, not the epoch: with ``size=4`` and 30
micro-batches in all, the windows are 4, 4, ..., 4 and a last one of 2, whose losses are
divided by 2. `OptimWrapper` keeps one of these and the loops place it from `TrainState`.

Example:
    >>> w = AccumulationWindows(4)
    >>> w.place(init_counts=0, max_counts=30)
    >>> w.divisor(0), w.divisor(28)
    (4, 2)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from engine.logging import current_logger


class AccumulationWindows:
    """Micro-batches done (``count``) of ``max_counts`` in windows of ``size``.

    Args:
        size: micro-batches per optimizer update (``accumulative_counts``), an int >= 1.

    Attributes:
        count: micro-batches back-propagated since the run's start.
        max_counts: micro-batches of the whole run; -1 while unknown (every window full).
        remainder: ``max_counts % size`` once placed; -1 before (MMEngine's "not placed").
    """

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"accumulative_counts must be an int >= 1, got {size!r}")
        self.size = size
        self.count = 0
        self.max_counts = -1
        self.remainder = -1

    def place(self, init_counts: int, max_counts: int) -> None:
        """Start at ``init_counts`` micro-batches done of ``max_counts``."""
        self.count = int(init_counts)
        self.max_counts = int(max_counts)
        self.remainder = self.max_counts % self.size if self.max_counts > 0 else 0

    def divisor(self, count: int) -> int:
        """Micro-batches in the window of micro-batch `count` (0-based), as planned."""
        last_full = self.max_counts - self.remainder
        if self.max_counts > 0 and self.remainder > 0 and count >= last_full:
            return self.remainder
        return self.size

    def ends_window(self) -> bool:
        """True once the micro-batch just counted closed its window."""
        return self.count % self.size == 0 or self.count == self.max_counts

    def next_ends_window(self) -> bool:
        """True when the next micro-batch will close its window."""
        nxt = self.count + 1
        return nxt % self.size == 0 or nxt == self.max_counts


def warn_placement(model: nn.Module | None, init_counts: int, size: int) -> None:
    """MMEngine's two warnings when windows are placed: a resume inside a window, and
    accumulation over BatchNorm layers (to the current `MMLogger`, as MMEngine logs them)."""
    if size == 1:
        return
    logger = current_logger()
    if init_counts % size != 0:
        logger.warning(
            "Resumed iteration number %d is inside an accumulation window of %d: the window "
            "continues with the gradients it had before the interruption only if they were "
            "saved.",
            init_counts,
            size,
        )
    if model is not None and any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
    ):
        logger.warning(
            "Gradient accumulative with BatchNorm: statistics follow micro-batches, not windows."
        )


def apply_partial_window(wrapper: Any) -> bool:
    """At the end of a run, apply `wrapper`'s open window as an update of its own.

    A wrapper used on only some iterations (a discriminator trained every k-th one) may
    end the run inside a window that never closes. Its gradients were divided by the
    planned window size; they are rescaled to the mean over the micro-batches really in the
    window (reduced across processes, which skipped that under ``no_sync``), then the
    wrapper steps and zeroes the gradients.

    Args:
        wrapper: an `OptimWrapper` (its ``windows``, ``optimizer``, ``step``, ``zero_grad``).

    Returns:
        True if an update was applied.
    """
    windows = wrapper.windows
    done = windows.count % windows.size
    if done == 0 or windows.count == windows.max_counts:
        return False
    grads = [
        p.grad
        for group in wrapper.optimizer.param_groups
        for p in group["params"]
        if p.grad is not None
    ]
    if not grads:
        return False
    factor = windows.divisor(windows.count - 1) / done
    accelerator = wrapper.accelerator
    if accelerator is not None and accelerator.num_processes > 1:
        for grad in grads:
            dist.all_reduce(grad)
        factor /= accelerator.num_processes
    if factor != 1:
        torch._foreach_mul_(grads, factor)
    wrapper.step()
    wrapper.zero_grad()
    return True

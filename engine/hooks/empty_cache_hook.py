"""`EmptyCacheHook`: release PyTorch's cached GPU memory at chosen points (MMEngine's)."""

from __future__ import annotations

from typing import Any

import torch

from engine.hooks.hook import Hook


class EmptyCacheHook(Hook):
    """Call ``torch.cuda.empty_cache()`` before/after each epoch and/or after each iteration
    of training, validation and test. Without CUDA it does nothing.

    Args:
        before_epoch / after_epoch / after_iter: where to release the cache.
    """

    priority = "NORMAL"

    def __init__(
        self, before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False
    ) -> None:
        self._do_before_epoch = before_epoch
        self._do_after_epoch = after_epoch
        self._do_after_iter = after_iter

    def _after_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None, mode="train"
    ) -> None:
        if self._do_after_iter:
            _empty()

    def _before_epoch(self, runner, mode: str = "train") -> None:
        if self._do_before_epoch:
            _empty()

    def _after_epoch(self, runner, mode: str = "train") -> None:
        if self._do_after_epoch:
            _empty()


def _empty() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

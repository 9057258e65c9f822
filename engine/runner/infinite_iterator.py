"""`_InfiniteDataloaderIterator`: MMEngine's endless iterator over a finite DataLoader.

engine's iteration-based loop cycles the data itself (`engine.runner.loops._cycle`, exact on
resume); this is the name MMEngine's code and tests import from ``engine.runner.loops``.
"""

from __future__ import annotations

from typing import Any


class _InfiniteDataloaderIterator:
    """Iterate `dataloader` forever; each new pass calls ``set_epoch(pass)`` on its sampler
    (or its batch sampler's sampler) so a shuffling sampler reshuffles."""

    def __init__(self, dataloader: Any) -> None:
        self._dataloader = dataloader
        self._iterator = iter(dataloader)
        self._epoch = 0

    def __iter__(self) -> _InfiniteDataloaderIterator:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            self._epoch += 1
            sampler = getattr(self._dataloader, "sampler", None)
            if not hasattr(sampler, "set_epoch"):
                sampler = getattr(getattr(self._dataloader, "batch_sampler", None), "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(self._epoch)
            self._iterator = iter(self._dataloader)
            return next(self._iterator)

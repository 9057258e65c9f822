"""`IterTimerHook`: data and iteration time of each training iteration, on the host clock."""

from __future__ import annotations

import time
from typing import Any

from engine.hooks.hook import Hook


class IterTimerHook(Hook):
    """Measures data time (waiting for the batch) and iteration time, on the host clock.

    The numbers are wall-clock times between events; with an asynchronous device they
    are exact on average over a log interval, which is how `LoggerHook` reports them.
    """

    priority = "NORMAL"

    def __init__(self) -> None:
        self.data_time = 0.0
        self.iter_time = 0.0
        self.total_time = 0.0
        self.total_iters = 0
        self._last = None

    def before_train_epoch(self, runner) -> None:
        self._last = time.perf_counter()

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        now = time.perf_counter()
        self.data_time = now - (self._last or now)
        hub = getattr(runner, "message_hub", None)
        if hub is not None:  # where MMEngine's hooks read it
            hub.update_scalar("train/data_time", self.data_time)

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        now = time.perf_counter()
        self.iter_time = now - (self._last or now)
        self._last = now
        self.total_time += self.iter_time
        self.total_iters += 1
        hub = getattr(runner, "message_hub", None)
        if hub is not None:
            hub.update_scalar("train/time", self.iter_time)

    def seconds_per_iter(self) -> float:
        return self.total_time / max(self.total_iters, 1)

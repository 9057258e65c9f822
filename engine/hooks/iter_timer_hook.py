"""`IterTimerHook`: data and iteration time of each iteration, and the ETA (MMEngine's keys).

Times are wall-clock differences between events on the host; with an asynchronous device
they are exact on average over a log interval, which is how `LoggerHook` reports them.
"""

from __future__ import annotations

import time
from typing import Any

from engine.hooks.hook import Hook


class IterTimerHook(Hook):
    """Times every training, validation and test iteration.

    Writes MMEngine's message-hub keys when the runner has a hub: scalars
    ``<mode>/data_time`` (waiting for the batch) and ``<mode>/time`` (the whole iteration),
    and the info ``eta`` (seconds left in training, or in the current val/test pass).
    For `LoggerHook` it keeps the last training ``data_time``/``iter_time`` and
    `seconds_per_iter`, the mean over the iterations of this run.
    """

    priority = "NORMAL"

    def __init__(self) -> None:
        self.data_time = 0.0
        self.iter_time = 0.0
        self.total_time = 0.0
        self.total_iters = 0
        self._eval_time = 0.0
        self._last: float | None = None

    def _before_epoch(self, runner, mode: str = "train") -> None:
        self._last = time.time()

    def _after_epoch(self, runner, mode: str = "train") -> None:
        self._eval_time = 0.0

    def _before_iter(
        self, runner, batch_idx: int, data_batch: Any = None, mode: str = "train"
    ) -> None:
        now = time.time()
        data_time = now - (self._last if self._last is not None else now)
        if mode == "train":
            self.data_time = data_time
        hub = getattr(runner, "message_hub", None)
        if hub is not None:
            hub.update_scalar(f"{mode}/data_time", data_time)

    def _after_iter(
        self,
        runner,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Any = None,
        mode: str = "train",
    ) -> None:
        now = time.time()
        took = now - (self._last if self._last is not None else now)
        self._last = now
        if mode == "train":
            self.iter_time = took
            self.total_time += took
            self.total_iters += 1
            left = (runner.max_iters or 0) - runner.iter - 1  # runner.iter: this one's index
        else:
            self._eval_time += took
            loader = runner.val_dataloader if mode == "val" else runner.test_dataloader
            left = len(loader) - batch_idx - 1
        hub = getattr(runner, "message_hub", None)
        if hub is not None:
            hub.update_scalar(f"{mode}/time", took)
            done = self.total_iters if mode == "train" else batch_idx + 1
            spent = self.total_time if mode == "train" else self._eval_time
            hub.update_info("eta", spent / max(done, 1) * max(left, 0))

    def seconds_per_iter(self) -> float:
        """Mean training iteration time so far in this run."""
        return self.total_time / max(self.total_iters, 1)

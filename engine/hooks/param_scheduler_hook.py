"""`ParamSchedulerHook`: sets lr/momentum from the schedules after each optimizer update."""

from __future__ import annotations

from typing import Any

from engine.hooks.hook import Hook
from engine.optim.scheduler.apply import apply_schedules


class ParamSchedulerHook(Hook):
    """Sets lr/momentum from the schedules, as pure functions of (epoch, optimizer updates).

    Values are recomputed when training starts (or resumes), after every optimizer
    update, and at the end of each epoch for the next one (so other hooks' ``before_train_epoch``
    already sees the new epoch's value, as in MMEngine). A resumed run therefore gets
    exactly the value of the uninterrupted one.

    Args:
        schedules: a list of schedules, or for an `OptimWrapperDict` a dict of such
            lists keyed by member name.
    """

    priority = "LOW"

    def __init__(self, schedules: list | dict) -> None:
        self.schedules = schedules
        self._last_step = -1

    def _apply(self, runner, epoch: int) -> None:
        step = runner.state.step
        if isinstance(self.schedules, dict):
            for name, schedules in self.schedules.items():
                apply_schedules(runner.optim_wrapper[name], schedules, epoch=epoch, step=step)
        else:
            apply_schedules(runner.optim_wrapper, self.schedules, epoch=epoch, step=step)
        self._last_step = step

    def before_train(self, runner) -> None:
        self._apply(runner, runner.state.epoch)

    def after_train_epoch(self, runner) -> None:
        self._apply(runner, runner.state.epoch + 1)

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if runner.state.step != self._last_step:
            self._apply(runner, runner.state.epoch)

"""`ParamSchedulerHook`: sets lr/momentum from the schedules after each optimizer update."""

from __future__ import annotations

import logging
from typing import Any

from engine.hooks.hook import Hook
from engine.optim.scheduler.apply import apply_schedules, epoch_end_updates
from engine.optim.scheduler.plateau import PlateauTracker, ReduceOnPlateauLR

logger = logging.getLogger(__name__)


class ParamSchedulerHook(Hook):
    """Sets lr/momentum from the schedules, as pure functions of (epoch, optimizer updates).

    Values are recomputed when training starts (or resumes), after every optimizer
    update, and at the end of each epoch for the next one (so other hooks' ``before_train_epoch``
    already sees the new epoch's value, as in MMEngine). Chained schedules take MMEngine's
    values (its recursion, replayed from the counts), so a resumed run gets exactly the
    value of the uninterrupted one. ``ReduceOnPlateau*`` schedules step on each validation's
    metrics; their state is this hook's ``state_dict`` and is saved with the run.

    Args:
        schedules: a list of schedules, or for an `OptimWrapperDict` a dict of such
            lists keyed by member name. None (MMEngine's ``ParamSchedulerHook()``): the
            Runner gives its own; outside one, the stateful schedulers in
            ``runner.param_schedulers`` are stepped as MMEngine does (iteration schedulers
            after each iteration, epoch ones after each epoch, plateau ones on the metrics).
    """

    priority = "LOW"

    def __init__(self, schedules: list | dict | None = None) -> None:
        self.schedules = schedules
        self._last_step = -1
        self._chains: dict = {}  # per member: each parameter's ScheduleChain
        self._epoch_ends = None
        self._plateaus: dict[str, PlateauTracker] = {}

    def _groups(self, runner: Any = None) -> list[tuple[str, list]]:
        """(member name, its schedules); one list for an `OptimWrapperDict` applies to
        every member, each keeping its own values."""
        if isinstance(self.schedules, dict):
            return list(self.schedules.items())
        inner = getattr(getattr(runner, "optim_wrapper", None), "optim_wrappers", None)
        if inner:
            return [(name, self.schedules) for name in inner]
        return [("", self.schedules)]

    def _wrapper(self, runner, name: str) -> Any:
        return runner.optim_wrapper[name] if name else runner.optim_wrapper

    def _trackers(self) -> dict[str, PlateauTracker]:
        """One tracker per plateau schedule, keyed '<member>/<index>' (JSON-friendly)."""
        if self.schedules is None:
            return self._plateaus
        for name, schedules in self._groups():
            for i, s in enumerate(schedules):
                key = f"{name}/{i}"
                if isinstance(s, ReduceOnPlateauLR) and key not in self._plateaus:
                    self._plateaus[key] = PlateauTracker(s)
        return self._plateaus

    def _apply(self, runner, epoch: int) -> None:
        step = runner.state.step
        trackers = self._trackers()
        for name, schedules in self._groups(runner):
            wrapper = self._wrapper(runner, name)
            chains = self._chains.setdefault(name, {})
            apply_schedules(
                wrapper, schedules, epoch=epoch, step=step, chains=chains,
                epoch_ends=self._epoch_ends,
            )  # fmt: skip
            for i, s in enumerate(schedules):
                tracker = trackers.get(f"{name}/{i}") or trackers.get(f"/{i}")
                for _ in range(tracker.reductions if tracker else 0):
                    tracker.reduce(wrapper.param_groups, s.param_name)
        self._last_step = step

    def before_train(self, runner) -> None:
        if self.schedules is None:
            return  # stateful schedulers start at their construction values
        loader, ow = getattr(runner, "train_dataloader", None), runner.optim_wrapper
        first = getattr(ow, "optim_wrappers", None)
        first = next(iter(first.values())) if first else ow
        acc = getattr(first, "accumulative_counts", 1)
        try:
            length = len(loader)
        except TypeError:
            length = None
        self._chains = {}  # a new run (or train() again): the epoch boundaries may differ
        if length:
            self._epoch_ends = epoch_end_updates(length, acc, runner.state.total_iters(length))
        by_iter = any(not s.by_epoch for _, group in self._groups() for s in group)
        if acc > 1 and by_iter:
            logger.info(
                "Iteration schedules count optimizer updates: one schedule step is one update "
                "of %d micro-batches (accumulative_counts=%d); MMEngine counts micro-batches, so "
                "its iteration counts (begin, end, milestones...) divide by %d here.",
                acc, acc, acc,
            )  # fmt: skip
        self._apply(runner, runner.state.epoch)

    def after_train_epoch(self, runner) -> None:
        if self.schedules is None:
            return _step_stateful(runner, lambda s: s.by_epoch)
        self._apply(runner, runner.state.epoch + 1)

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self.schedules is None:
            _step_stateful(runner, lambda s: not s.by_epoch)
        elif runner.state.step != self._last_step:
            self._apply(runner, runner.state.epoch)

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        """Plateau schedules judge this validation's metrics (inside their [begin, end))."""
        if self.schedules is None:
            if metrics:
                _step_stateful(runner, lambda s: getattr(s, "need_val_args", False), metrics)
            return
        trackers = self._trackers()
        if not trackers or not metrics or getattr(runner, "optim_wrapper", None) is None:
            return
        changed = False
        for tracker in trackers.values():
            s = tracker.schedule
            if s.begin <= runner.state.epoch < s.end:
                changed |= tracker.observe(metrics)
        if changed:
            self._apply(runner, runner.state.epoch)

    def state_dict(self) -> dict:
        return {"plateaus": {k: t.state_dict() for k, t in self._trackers().items()}}

    def load_state_dict(self, state: dict) -> None:
        trackers = self._trackers()
        for key, saved in state.get("plateaus", {}).items():
            if key in trackers:
                trackers[key].load_state_dict(saved)


def _step_stateful(runner: Any, chosen: Any, *args: Any) -> None:
    """``scheduler.step(*args)`` for each of ``runner.param_schedulers`` that `chosen` picks."""
    schedulers = getattr(runner, "param_schedulers", None)
    if schedulers is None:
        return
    groups = schedulers.values() if isinstance(schedulers, dict) else [schedulers]
    if not all(isinstance(group, list) for group in groups):
        raise TypeError(
            "runner.param_schedulers should be list of ParamScheduler or a dict containing "
            f"list of ParamScheduler, got {type(schedulers).__name__}"
        )
    for group in groups:
        for scheduler in group:
            if chosen(scheduler):
                scheduler.step(*args)

"""`ReduceOnPlateauLR`: divide a value when a validation metric stops improving.

Unlike the other schedules its value is not a function of the count but of the metrics
seen, so it keeps state: `PlateauTracker` (best score, bad epochs, cooldown, reductions),
saved with the run (``ParamSchedulerHook.state_dict``) or with the stateful scheduler.
In a run, the value is the other schedules' chained value times ``factor`` per reduction,
never below ``min_value``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from engine.optim.scheduler.apply import read_value, write_value
from engine.optim.scheduler.schedules import INF, _need, _Window
from engine.optim.scheduler.stateful import _ParamScheduler


@dataclass(frozen=True)
class ReduceOnPlateauLR(_Window):
    """Multiply by ``factor`` when ``monitor`` has not improved for ``patience`` validations.

    Args:
        monitor: The metric's key in the validation results.
        rule: ``'less'`` (a loss) or ``'greater'`` (an accuracy) is better.
        factor: Multiplier in (0, 1) applied at each reduction.
        patience: Validations without improvement tolerated before reducing.
        threshold: Smallest change that counts as an improvement (>= 0).
        threshold_rule: ``'rel'`` (relative to the best) or ``'abs'``.
        cooldown: Validations to wait after a reduction before counting bad ones again.
        min_value: Lower bound (one value, or one per param group).
        eps: Reductions smaller than this are skipped.
    """

    monitor: str = "loss"
    rule: str = "less"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_rule: str = "rel"
    cooldown: int = 0
    min_value: float | Sequence[float] = 0.0
    eps: float = 1e-8

    def _check(self) -> None:
        _need(self.by_epoch, "by_epoch", False, "True (it steps on validation metrics)")
        _need(0 <= self.factor < 1.0, "factor", self.factor, "a float in [0, 1)")
        _need(self.threshold >= 0, "threshold", self.threshold, "a float >= 0")
        _need(self.rule in ("less", "greater"), "rule", self.rule, "'less' or 'greater'")
        ok = self.threshold_rule in ("rel", "abs")
        _need(ok, "threshold_rule", self.threshold_rule, "'rel' or 'abs'")
        if isinstance(self.min_value, list):
            object.__setattr__(self, "min_value", tuple(self.min_value))

    def step_value(self, value: float, t: int, base: float) -> float:
        return value  # not a function of the count: see PlateauTracker

    def _curve(self, t: int, base: float) -> float:
        return 1.0

    def min_values(self, param_groups: list[dict]) -> list[float]:
        """One lower bound per group. An optim wrapper's ``base_param_settings`` group (its
        last, see `engine.optim.base_optim_wrapper`) takes the last given, as in MMEngine."""
        if not isinstance(self.min_value, Sequence):
            return [self.min_value] * len(param_groups)
        base = bool(param_groups) and _is_base_settings(param_groups[-1])
        n_groups = len(param_groups) - base
        if len(self.min_value) != n_groups:
            raise ValueError(
                f"min_value has {len(self.min_value)} values; expected one per param group ({n_groups})"
            )
        return list(self.min_value) + list(self.min_value[-1:]) * base

    def is_better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        if self.rule == "less":
            return value < (
                best * (1 - self.threshold)
                if self.threshold_rule == "rel"
                else best - self.threshold
            )
        return value > (
            best * (1 + self.threshold) if self.threshold_rule == "rel" else best + self.threshold
        )


class PlateauTracker:
    """What a `ReduceOnPlateauLR` remembers between validations (JSON-serialisable).

    ``observe(metrics)`` returns True when the value should be reduced now.
    """

    def __init__(self, schedule: ReduceOnPlateauLR) -> None:
        self.schedule = schedule
        self.best: float | None = None
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.reductions = 0

    def observe(self, metrics: dict) -> bool:
        s = self.schedule
        if not isinstance(metrics, dict):
            raise TypeError(
                f"metrics must be a dict of name -> value, got {type(metrics).__name__}"
            )
        if s.monitor not in metrics:
            raise KeyError(
                f"ReduceOnPlateau monitors {s.monitor!r}, absent from the metrics {list(metrics)}"
            )
        metric = float(metrics[s.monitor])
        if s.is_better(metric, self.best):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > s.patience:
            self.cooldown_counter, self.num_bad_epochs = s.cooldown, 0
            self.reductions += 1
            return True
        return False

    def reduce(self, param_groups: list[dict], name: str) -> None:
        """Multiply every group's value by ``factor``, not below ``min_value``."""
        lows = self.schedule.min_values(param_groups)
        for group, low in zip(param_groups, lows):
            old = float(read_value(group, name))
            new = max(old * self.schedule.factor, low)
            if old - new > self.schedule.eps:
                write_value(group, name, new)

    def state_dict(self) -> dict:
        return {
            k: getattr(self, k)
            for k in ("best", "num_bad_epochs", "cooldown_counter", "reductions")
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlateauTracker) and self.state_dict() == other.state_dict()

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class _PlateauScheduler(_ParamScheduler):
    """The stateful `ReduceOnPlateauLR`: ``step()`` counts epochs, ``step(metrics)`` decides."""

    def _setup(self, optimizer: Any, last_step: int = -1, verbose: bool = False) -> None:
        super()._setup(optimizer, last_step, verbose)
        self.min_values(optimizer.param_groups)  # checked now, not at the first reduction
        self.tracker = PlateauTracker(self)
        self._global_step = -1  # the constructor's step() makes it 0, as in MMEngine

    def step(self, metrics: dict | None = None) -> None:  # type: ignore[override]
        """Without metrics, one more epoch; with them, one validation's verdict."""
        if metrics is None:
            self._global_step += 1
            self._last_value = [read_value(g, self.param_name) for g in self.optimizer.param_groups]
            return
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            if self.tracker.observe(metrics):
                self.tracker.reduce(self.optimizer.param_groups, self.param_name)
        self._last_value = [read_value(g, self.param_name) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["tracker"] = self.tracker.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        tracker = state.pop("tracker", None)
        super().load_state_dict(state)
        if isinstance(tracker, dict):
            self.tracker = PlateauTracker(self)
            self.tracker.load_state_dict(tracker)


def _is_base_settings(group: dict) -> bool:
    # torch stores every group's params as a list; only MMEngine's base group holds a tensor
    return isinstance(group.get("params"), torch.Tensor)


ReduceOnPlateauLR._stateful_base = _PlateauScheduler
__all__ = ["INF", "PlateauTracker", "ReduceOnPlateauLR"]

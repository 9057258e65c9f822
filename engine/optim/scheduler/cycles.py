"""Schedules that cycle or restart: `OneCycleLR` and `CosineRestartLR`, pure functions of a count."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.optim.scheduler.schedules import _is_count, _need, _Window


@dataclass(frozen=True)
class OneCycleLR(_Window):
    """The 1cycle policy: from ``eta_max / div_factor`` up to ``eta_max``, then far down.

    The value is absolute, as in MMEngine: the optimizer's own lr is ignored.

    Args:
        eta_max: Peak value, > 0.
        total_steps: Length of the cycle; defaults to ``end - begin``.
        pct_start: Fraction of the cycle spent rising, in [0, 1].
        anneal_strategy: ``'cos'`` or ``'linear'``.
        div_factor: The start value is ``eta_max / div_factor``.
        final_div_factor: The final value is the start value / ``final_div_factor``.
        three_phase: Rise, fall back to the start value, then anneal to the final one.
    """

    eta_max: float = 0.0  # required: > 0 (a default only to report other errors first)
    total_steps: int | None = None
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False
    _counts = ("total_steps",)

    def _check(self) -> None:
        steps, strategy = self.total_steps, self.anneal_strategy
        _need(self.eta_max > 0, "eta_max", self.eta_max, "a float > 0")
        _need(steps is None or _is_count(steps, 1), "total_steps", steps, "an int >= 1 or None")
        _need(0 <= self.pct_start <= 1, "pct_start", self.pct_start, "a float in [0, 1]")
        _need(strategy in ("cos", "linear"), "anneal_strategy", strategy, "'cos' or 'linear'")
        _need(self.div_factor > 0, "div_factor", self.div_factor, "a float > 0")
        _need(self.final_div_factor > 0, "final_div_factor", self.final_div_factor, "a float > 0")

    def _curve(self, t: int, base: float) -> float:
        total = self.total_steps or (self.end - self.begin)
        t = min(t, total - 1)  # hold the final value after the cycle
        start = self.eta_max / self.div_factor
        rise_end = self.pct_start * total - 1
        # (last count of the phase, value at its start, value at its end), as in MMEngine
        phases = [(rise_end, start, self.eta_max)]
        if self.three_phase:
            phases.append((2 * rise_end, self.eta_max, start))
        phases.append((total - 1, phases[-1][2], start / self.final_div_factor))
        i, phase_start = 0, 0.0
        while i < len(phases) - 1 and t > phases[i][0]:
            phase_start, i = phases[i][0], i + 1
        phase_end, v0, v1 = phases[i]
        span = phase_end - phase_start
        pct = (t - phase_start) / span if span > 0 else 1.0
        if self.anneal_strategy == "cos":
            value = v1 + (v0 - v1) * (1 + math.cos(math.pi * pct)) / 2
        else:
            value = v0 + (v1 - v0) * pct
        return value / base if base else 1.0

    def step_value(self, value: float, t: int, base: float) -> float:
        # Absolute, as in MMEngine: the cycle ignores earlier schedules and the base.
        return self._curve(t, 1.0)

    def prepare_groups(self, param_groups: list[dict], name: str) -> None:
        """MMEngine's stateful OneCycle records its start, peak and final values."""
        for group in param_groups:
            group[f"initial_{name}"] = self.eta_max / self.div_factor
            group[f"max_{name}"] = self.eta_max
            group[f"min_{name}"] = self.eta_max / self.div_factor / self.final_div_factor


@dataclass(frozen=True)
class CosineRestartLR(_Window):
    """Cosine annealing with restarts (SGDR): ``periods`` consecutive cosines, the i-th
    starting at ``base * restart_weights[i]`` and ending at the minimum; after the last
    period the value is held.

    Args:
        periods: Length of each period in counts (ints >= 1).
        restart_weights: Weight of the base value at each restart (same length).
        eta_min: Absolute minimum; give it or ``eta_min_ratio``, not both.
        eta_min_ratio: Minimum as a fraction of the base value.
    """

    periods: Sequence[int]
    restart_weights: Sequence[float] = (1.0,)
    eta_min: float | None = None
    eta_min_ratio: float | None = None
    _counts = ("periods",)

    def _check(self) -> None:
        periods, weights = self.periods, self.restart_weights
        _need(all(_is_count(p, 1) for p in periods), "periods", periods, "a list of ints >= 1")
        ok = len(weights) == len(periods)
        _need(ok, "restart_weights", weights, f"{len(periods)} weights, one per period")
        ok = (self.eta_min is None) != (self.eta_min_ratio is None)
        _need(ok, "eta_min_ratio", self.eta_min_ratio, "exactly one of eta_min and eta_min_ratio")
        object.__setattr__(self, "periods", tuple(periods))
        object.__setattr__(self, "restart_weights", tuple(weights))

    def _period(self, t: int) -> tuple[int, int] | None:
        """(index of the period holding count t, counts since its restart); None after."""
        start = 0
        for i, length in enumerate(self.periods):
            if t < start + length:
                return i, t - start
            start += length
        return None

    def _low(self, base: float) -> float:
        return self.eta_min if self.eta_min_ratio is None else base * self.eta_min_ratio

    def step_value(self, value: float, t: int, base: float) -> float:
        where = self._period(t)
        if where is None:
            return value
        i, k = where
        if k == 0:
            return base * self.restart_weights[i]
        length, low = self.periods[i], self._low(base)
        ratio = (1 + math.cos(math.pi * k / length)) / (1 + math.cos(math.pi * (k - 1) / length))
        return ratio * (value - low) + low

    def _curve(self, t: int, base: float) -> float:
        where = self._period(t) or (len(self.periods) - 1, self.periods[-1] - 1)
        i, k = where
        high, low = base * self.restart_weights[i], self._low(base)
        value = low + (high - low) * (1 + math.cos(math.pi * k / self.periods[i])) / 2
        return value / base if base else 1.0

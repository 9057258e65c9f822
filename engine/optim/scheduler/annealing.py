"""Schedules that anneal towards an absolute minimum: `CosineAnnealingLR` and `PolyLR`, pure
functions of a count (the minimum is absolute, so after an earlier decay they chain by
MMEngine's recursion, not by multiplying factors)."""

import math
from dataclasses import dataclass

from engine.optim.scheduler.schedules import _is_count, _need, _Window


@dataclass(frozen=True)
class CosineAnnealingLR(_Window):
    """Cosine from the base value down to a minimum over ``T_max`` counts.

    Args:
        T_max: Half period; defaults to ``end - begin``.
        eta_min: Absolute minimum (0 when neither minimum is given).
        eta_min_ratio: Minimum as a fraction of the base value.
    """

    T_max: int | None = None
    eta_min: float | None = None
    eta_min_ratio: float | None = None
    _counts = ("T_max",)

    def _check(self) -> None:
        ok = self.T_max is None or _is_count(self.T_max, 1)
        _need(ok, "T_max", self.T_max, "an int >= 1 or None")
        ok = self.eta_min is None or self.eta_min_ratio is None
        _need(ok, "eta_min_ratio", self.eta_min_ratio, "None when eta_min is given")

    def _curve(self, t: int, base: float) -> float:
        period = self.T_max or (self.end - self.begin)
        ratio = self.eta_min_ratio
        low = base * ratio if ratio is not None else (self.eta_min or 0.0)
        value = low + (base - low) * (1 + math.cos(math.pi * t / period)) / 2
        return value / base if base else 1.0  # a zero base has nothing to scale

    def step_value(self, value: float, t: int, base: float) -> float:
        if t == 0:
            return value
        period = self.T_max or (self.end - self.begin)
        ratio = self.eta_min_ratio
        low = base * ratio if ratio is not None else (self.eta_min or 0.0)
        if (t - 1 - period) % (2 * period) == 0:  # the recursion's 0/0 at the trough
            return value + (base - low) * (1 - math.cos(math.pi / period)) / 2
        ratio_t = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
        return ratio_t * (value - low) + low


@dataclass(frozen=True)
class PolyLR(_Window):
    """Polynomial decay of exponent ``power`` (> 0) from the base value to the
    absolute ``eta_min``, reached at ``end - 1``."""

    eta_min: float = 0.0
    power: float = 1.0

    def _check(self) -> None:
        _need(self.power > 0, "power", self.power, "a float > 0")

    def _curve(self, t: int, base: float) -> float:
        total = self.end - self.begin - 1
        if total <= 0 or not base:
            return 1.0
        return (self.eta_min + (base - self.eta_min) * (1 - t / total) ** self.power) / base

    def step_value(self, value: float, t: int, base: float) -> float:
        if t == 0:
            return value
        total = self.end - self.begin - 1
        return (value - self.eta_min) * (1 - 1 / (total - t + 1)) ** self.power + self.eta_min

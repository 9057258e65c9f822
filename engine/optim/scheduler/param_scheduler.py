"""Parameter schedules with MMEngine's names, as pure functions of a count.

A schedule holds no state. ``factor_at(count, base)`` is the multiplier of a
param group's hyper-parameter at ``count``: the epoch for ``by_epoch=True``,
otherwise the number of optimizer updates done. ``apply_schedules``
(`engine.optim.scheduler.apply`, re-exported here) multiplies the factors of all
schedules of a parameter onto the base value remembered in the param group, so
a resumed run gets exactly the value it had. ``build_schedule`` turns
MMEngine's ``dict(type='LinearLR', ...)`` into a schedule.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    >>> warmup, decay = LinearLR(start_factor=0.5, end=5), MultiStepLR([3, 6, 9])
    >>> apply_schedules(opt, [warmup, decay], epoch=3, step=0)
    >>> round(opt.param_groups[0]["lr"], 6)
    0.004375
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, make_dataclass, replace
from typing import Any

from engine.optim.scheduler.apply import Schedule, apply_schedules

INF = int(1e9)  # MMEngine's "never ends"


def _need(ok: bool, name: str, value: Any, accepted: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; expected {accepted}")


def _is_count(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


@dataclass(frozen=True, kw_only=True)
class _Window:
    """The ``[begin, end)`` window and count semantics shared by all schedules.

    Args:
        begin: First count at which the schedule acts; before it the factor is 1.
        end: From this count on, the factor it had at ``end - 1`` is held.
        by_epoch: Count epochs (True) or optimizer updates (False).
        convert_to_iter_based: Ask the runner for ``to_iter_based``, so that an
            epoch schedule changes smoothly within epochs.
        param_name: ``'lr'``, ``'momentum'`` (Adam: ``betas[0]``) or another
            param-group key.
    """

    begin: int = 0
    end: int = INF
    by_epoch: bool = True
    convert_to_iter_based: bool = False
    param_name: str = "lr"
    _counts = ()  # own arguments measured in counts, scaled by to_iter_based

    def __post_init__(self) -> None:
        _need(_is_count(self.begin, 0), "begin", self.begin, "an int >= 0")
        _need(_is_count(self.end, self.begin + 1), "end", self.end, f"an int > begin={self.begin}")
        ok = self.by_epoch or not self.convert_to_iter_based
        _need(ok, "convert_to_iter_based", True, "False when by_epoch=False")
        self._check()

    def _check(self) -> None:
        """Validate the schedule's own arguments."""

    def _curve(self, t: int, base: float) -> float:
        raise NotImplementedError

    def factor_at(self, count: int, base: float) -> float:
        """Multiplier of the base value at ``count``.

        Args:
            count: The epoch (``by_epoch=True``) or the number of updates done.
            base: The param group's base value; absolute targets (``eta_min``,
                ``eta_max``) are divided by it.
        """
        if count < self.begin:
            return 1.0
        # MMEngine counts from `begin`; past `end` the last factor is held.
        return self._curve(min(count, self.end - 1) - self.begin, base)

    def to_iter_based(self, updates_per_epoch: int) -> "_Window":
        """The same schedule counted in optimizer updates, as MMEngine converts it.

        Args:
            updates_per_epoch: Optimizer updates in one epoch.

        Returns:
            A copy with ``by_epoch=False`` and ``begin``, ``end``, step sizes,
            milestones, ``T_max`` and ``total_steps`` times ``updates_per_epoch``.
        """
        n = updates_per_epoch
        _need(self.by_epoch, "by_epoch", False, "True for to_iter_based")
        _need(_is_count(n, 1), "updates_per_epoch", n, "an int >= 1")
        scaled = {}
        for name in self._counts:
            value = getattr(self, name)
            if value is not None:
                scaled[name] = [v * n for v in value] if name == "milestones" else value * n
        end = INF if self.end == INF else self.end * n
        begin = self.begin * n
        return replace(
            self, begin=begin, end=end, by_epoch=False, convert_to_iter_based=False, **scaled
        )


@dataclass(frozen=True)
class ConstantLR(_Window):
    """Scale by ``factor``, in (0, 1]; like MMEngine, back to 1 from ``end - 1`` on."""

    factor: float = 1.0 / 3

    def _check(self) -> None:
        _need(0 < self.factor <= 1, "factor", self.factor, "a float in (0, 1]")

    def _curve(self, t: int, base: float) -> float:
        # MMEngine's total_iters is end - begin - 1; a one-count window keeps factor.
        return self.factor if t < max(self.end - self.begin - 1, 1) else 1.0


@dataclass(frozen=True)
class LinearLR(_Window):
    """Move the factor linearly from ``start_factor`` (in (0, 1]) at ``begin`` to
    ``end_factor`` (in [0, 1]) at ``end - 1``."""

    start_factor: float = 1.0 / 3
    end_factor: float = 1.0

    def _check(self) -> None:
        _need(0 < self.start_factor <= 1, "start_factor", self.start_factor, "a float in (0, 1]")
        _need(0 <= self.end_factor <= 1, "end_factor", self.end_factor, "a float in [0, 1]")

    def _curve(self, t: int, base: float) -> float:
        total = self.end - self.begin - 1
        if total <= 0:
            return self.start_factor
        return self.start_factor + (self.end_factor - self.start_factor) * t / total


@dataclass(frozen=True)
class StepLR(_Window):
    """Multiply by ``gamma`` (> 0) every ``step_size`` (int >= 1) counts."""

    step_size: int
    gamma: float = 0.1
    _counts = ("step_size",)

    def _check(self) -> None:
        _need(_is_count(self.step_size, 1), "step_size", self.step_size, "an int >= 1")
        _need(self.gamma > 0, "gamma", self.gamma, "a float > 0")

    def _curve(self, t: int, base: float) -> float:
        return self.gamma ** (t // self.step_size)


@dataclass(frozen=True)
class MultiStepLR(_Window):
    """Multiply by ``gamma`` (> 0) at each of the ``milestones`` (ints >= 0, counted
    from ``begin``; a repeated one decays twice)."""

    milestones: Sequence[int]
    gamma: float = 0.1
    _counts = ("milestones",)

    def _check(self) -> None:
        ok = all(_is_count(m, 0) for m in self.milestones)
        _need(ok, "milestones", self.milestones, "a list of ints >= 0")
        _need(self.gamma > 0, "gamma", self.gamma, "a float > 0")
        # A sorted tuple keeps the frozen schedule hashable and safe from later edits.
        object.__setattr__(self, "milestones", tuple(sorted(self.milestones)))

    def _curve(self, t: int, base: float) -> float:
        return self.gamma ** sum(1 for m in self.milestones if m <= t)


@dataclass(frozen=True)
class ExponentialLR(_Window):
    """Multiply by ``gamma`` (> 0) every count."""

    gamma: float

    def _check(self) -> None:
        _need(self.gamma > 0, "gamma", self.gamma, "a float > 0")

    def _curve(self, t: int, base: float) -> float:
        return self.gamma**t


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

    eta_max: float
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


def _momentum(cls: type) -> type:
    """``cls`` with ``param_name='momentum'`` by default (SGD momentum, Adam betas[0])."""
    spec = [("param_name", str, field(default="momentum", kw_only=True))]
    doc = {"__doc__": f"{cls.__name__} applied to momentum."}
    name = cls.__name__.replace("LR", "Momentum")
    variant = make_dataclass(name, spec, bases=(cls,), frozen=True, namespace=doc)
    variant.__module__ = __name__  # so that repr and pickle find it here
    return variant


ConstantMomentum = _momentum(ConstantLR)
LinearMomentum = _momentum(LinearLR)
StepMomentum = _momentum(StepLR)
MultiStepMomentum = _momentum(MultiStepLR)
ExponentialMomentum = _momentum(ExponentialLR)
CosineAnnealingMomentum = _momentum(CosineAnnealingLR)
PolyMomentum = _momentum(PolyLR)


_BY_NAME: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        ConstantLR, LinearLR, StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR,
        PolyLR, OneCycleLR, ConstantMomentum, LinearMomentum, StepMomentum,
        MultiStepMomentum, ExponentialMomentum, CosineAnnealingMomentum, PolyMomentum,
    )
}  # fmt: skip
__all__ = ["INF", *_BY_NAME, "Schedule", "apply_schedules", "build_schedule"]


def build_schedule(cfg: dict | Schedule) -> Schedule:
    """Build a schedule from an MMEngine dict such as ``dict(type='LinearLR', end=5)``.

    Args:
        cfg: The dict (``type`` is a schedule name above, or the class), or an
            already built schedule, which is returned unchanged.
    """
    if not isinstance(cfg, dict):
        return cfg
    kwargs = dict(cfg)
    kind = kwargs.pop("type", None)
    cls = _BY_NAME.get(kind.__name__ if isinstance(kind, type) else str(kind))
    _need(cls is not None, "type", kind, f"one of {', '.join(_BY_NAME)}")
    return cls(**kwargs)

"""The schedules with MMEngine's names (learning rate versions), as pure functions of a count.

A schedule holds no state. ``step_value(value, t, base)`` is MMEngine's chainable
recursion (the value ``t`` counts after ``begin``, from the value one count before);
``factor_at(count, base)`` is the closed form of one schedule alone. The count is the
epoch for ``by_epoch=True``, otherwise the number of optimizer updates done.
``apply_schedules`` (`engine.optim.scheduler.apply`, re-exported here) replays the
recursion of all schedules of a parameter from the base value remembered in the param
group, so chained schedules give MMEngine's values and a resumed run gets exactly the
value it had. Called with an optimizer first (``LinearLR(optimizer, ...)``), a schedule
is MMEngine's stateful scheduler (`engine.optim.scheduler.stateful`). ``build_schedule``
turns MMEngine's ``dict(type='LinearLR', ...)`` into a schedule.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    >>> warmup, decay = LinearLR(start_factor=0.5, end=5), MultiStepLR([3, 6, 9])
    >>> apply_schedules(opt, [warmup, decay], epoch=3, step=0)
    >>> round(opt.param_groups[0]["lr"], 6)
    0.004375
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from engine.optim.scheduler.apply import ScheduleArgumentError
from engine.optim.scheduler.stateful import dispatch_new, is_optimizer

INF = int(1e9)  # MMEngine's "never ends"


def _need(ok: bool, name: str, value: Any, accepted: str) -> None:
    if not ok:
        raise ScheduleArgumentError(f"{name}={value!r} is invalid; expected {accepted}")


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

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # `LinearLR(optimizer, ...)` is MMEngine's stateful scheduler; `LinearLR(...)` a schedule.
        return dispatch_new(cls, args, kwargs)

    def __post_init__(self) -> None:
        _need(_is_count(self.begin, 0), "begin", self.begin, "an int >= 0")
        ok = _is_count(self.end, self.begin + 1)
        _need(ok, "end", self.end, f"an int > begin={self.begin} (end should be larger than begin)")
        ok = self.by_epoch or not self.convert_to_iter_based
        _need(ok, "convert_to_iter_based", True, "False when by_epoch=False")
        self._check()

    def _check(self) -> None:
        """Validate the schedule's own arguments."""

    def _curve(self, t: int, base: float) -> float:
        raise NotImplementedError

    def step_value(self, value: float, t: int, base: float) -> float:
        """MMEngine's chainable form: the value ``t`` counts after ``begin`` from ``value``,
        the value one count earlier (whatever earlier schedules made it).

        Args:
            value: The parameter's value before this count.
            t: Counts since ``begin`` (0 at ``begin``).
            base: The param group's base value (``initial_lr``...).
        """
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

    def to_iter_based(self, updates_per_epoch: int | Callable[[int], int]) -> "_Window":
        """The same schedule counted in optimizer updates.

        Args:
            updates_per_epoch: Optimizer updates in one epoch (MMEngine's uniform scaling),
                or a function from a number of epochs ``e`` to the updates done by the end
                of epoch ``e``: with accumulation windows that span epochs, every epoch
                boundary (``begin``, ``end``, milestones, ``T_max``...) then lands on the
                update at which that epoch really ends.

        Returns:
            A copy with ``by_epoch=False`` and every count argument converted. (A `StepLR`
            over epochs of unequal update counts becomes the equivalent `MultiStepLR`.)
        """
        n = updates_per_epoch
        _need(self.by_epoch, "by_epoch", False, "True for to_iter_based")
        if callable(n):
            ends = n
        else:
            _need(_is_count(n, 1), "updates_per_epoch", n, "an int >= 1")
            ends = n.__mul__
        begin = ends(self.begin)

        def span(epochs: int) -> int:  # updates from `begin` to `begin + epochs` epochs
            return ends(self.begin + epochs) - begin

        scaled: dict[str, Any] = {}
        for name in self._counts:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "milestones":
                scaled[name] = [span(m) for m in value]
            elif name == "periods":  # consecutive lengths: convert the cumulative ends
                cum = [sum(value[: i + 1]) for i in range(len(value))]
                scaled[name] = [span(c) - span(c - p) for c, p in zip(cum, value)]
            elif name == "step_size" and callable(n):
                return self._step_as_milestones(ends)
            else:
                scaled[name] = span(value)
        end = INF if self.end == INF else ends(self.end)
        return replace(
            self, begin=begin, end=end, by_epoch=False, convert_to_iter_based=False, **scaled
        )

    @classmethod
    def build_iter_from_epoch(cls, *args: Any, epoch_length: int, **kwargs: Any) -> Any:
        """MMEngine's constructor of an iteration schedule from epoch arguments.

        ``LinearLR.build_iter_from_epoch(optimizer, end=2, epoch_length=100)`` is the
        stateful `LinearLR` over updates 0..200; without an optimizer, the schedule.
        """
        lead = 0
        if args and is_optimizer(args[0]):
            lead = 2 if getattr(cls, "_named", False) else 1
        stateful = {k: kwargs.pop(k) for k in ("last_step", "verbose") if k in kwargs}
        lead = min(lead, len(args))
        if lead == 2:
            kwargs["param_name"] = args[1]
        pure = cls(*args[lead:], **kwargs).to_iter_based(epoch_length)
        if not lead:
            return pure
        values = {f.name: getattr(pure, f.name) for f in fields(pure) if f.init}
        return cls(args[0], **values, **stateful)


@dataclass(frozen=True)
class ConstantLR(_Window):
    """Scale by ``factor``, in (0, 1]; like MMEngine, back to 1 from ``end - 1`` on."""

    factor: float = 1.0 / 3

    def _check(self) -> None:
        _need(0 < self.factor <= 1, "factor", self.factor, "a float in (0, 1]")

    def _curve(self, t: int, base: float) -> float:
        # MMEngine's total_iters is end - begin - 1; a one-count window keeps factor.
        return self.factor if t < max(self.end - self.begin - 1, 1) else 1.0

    def step_value(self, value: float, t: int, base: float) -> float:
        if t == 0:
            return value * self.factor
        return value / self.factor if t == self.end - self.begin - 1 else value


@dataclass(frozen=True)
class LinearLR(_Window):
    """Move the factor linearly from ``start_factor`` (in [0, 1]) at ``begin`` to
    ``end_factor`` (in [0, 1]) at ``end - 1``.

    ``start_factor=0`` is accepted as MMEngine accepts it, but the chained value cannot rise
    from 0 (MMEngine divides by zero there): stepping past the first count raises
    `ScheduleArgumentError`. Use a small positive start_factor (e.g. 1e-3) to warm up from ~0.
    """

    start_factor: float = 1.0 / 3
    end_factor: float = 1.0

    def _check(self) -> None:
        _need(0 <= self.start_factor <= 1, "start_factor", self.start_factor, "a float in [0, 1]")
        _need(0 <= self.end_factor <= 1, "end_factor", self.end_factor, "a float in [0, 1]")

    def _curve(self, t: int, base: float) -> float:
        total = self.end - self.begin - 1
        if total <= 0:
            return self.start_factor
        return self.start_factor + (self.end_factor - self.start_factor) * t / total

    def step_value(self, value: float, t: int, base: float) -> float:
        if t == 0:
            return value * self.start_factor
        if self.start_factor == 0:
            raise ScheduleArgumentError(
                "LinearLR(start_factor=0) set the value to 0 and a chained schedule cannot rise "
                "from 0 (its next value is undefined); use a small positive start_factor (1e-3)"
            )
        total, delta = self.end - self.begin - 1, self.end_factor - self.start_factor
        return value * (1.0 + delta / (total * self.start_factor + (t - 1) * delta))


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

    def step_value(self, value: float, t: int, base: float) -> float:
        return value * self.gamma if t and t % self.step_size == 0 else value

    def _step_as_milestones(self, ends: Callable[[int], int]) -> "_Window":
        _need(self.end != INF, "end", INF, "a finite end to convert StepLR with uneven epochs")
        edges = range(self.step_size, self.end - self.begin, self.step_size)
        milestones = [ends(self.begin + e) - ends(self.begin) for e in edges]
        return MultiStepLR(
            milestones, gamma=self.gamma, begin=ends(self.begin), end=ends(self.end),
            by_epoch=False, param_name=self.param_name,
        )  # fmt: skip


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

    def step_value(self, value: float, t: int, base: float) -> float:
        hits = Counter(self.milestones)[t]
        return value * self.gamma**hits if hits else value


@dataclass(frozen=True)
class ExponentialLR(_Window):
    """Multiply by ``gamma`` (> 0) every count."""

    gamma: float

    def _check(self) -> None:
        _need(self.gamma > 0, "gamma", self.gamma, "a float > 0")

    def _curve(self, t: int, base: float) -> float:
        return self.gamma**t

    def step_value(self, value: float, t: int, base: float) -> float:
        return value * self.gamma if t else value

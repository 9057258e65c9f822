"""Setting scheduled values in an optimizer's param groups.

The schedules (`engine.optim.scheduler.param_scheduler`) only say how a value moves from
one count to the next (MMEngine's chainable form). `apply_schedules` reads the base value
each param group remembers (``initial_lr``, ``initial_momentum``...), replays every
schedule of that parameter from count 0 in MMEngine's order (all schedules once at the
start; then after each update the iteration schedules, after each epoch the epoch ones),
and writes the result back: a value depends on the counts alone, chained schedules give
MMEngine's values, and a resumed run gets them exactly. `ScheduleChain` keeps its place,
so a run that asks for one count after the other pays one step each time.
``'momentum'`` means Adam's ``betas[0]`` where a group has no ``momentum``.

Example:
    >>> import torch
    >>> from engine.optim.scheduler.param_scheduler import LinearLR
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    >>> apply_schedules(opt, [LinearLR(start_factor=0.5, end=5)], epoch=0, step=0)
    >>> opt.param_groups[0]["lr"], opt.param_groups[0]["initial_lr"]
    (0.025, 0.05)
"""

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Schedule(Protocol):
    """What ``apply_schedules`` needs from a schedule. (A schedule with ``factor_at(count,
    base)`` instead of ``step_value`` multiplies the chained value by that factor.)"""

    param_name: str
    by_epoch: bool
    convert_to_iter_based: bool
    begin: int
    end: int

    def step_value(self, value: float, t: int, base: float) -> float: ...

    def to_iter_based(self, updates_per_epoch: Any) -> "Schedule": ...


class ScheduleArgumentError(ValueError, AssertionError):
    """A bad schedule argument. Also an AssertionError, which MMEngine raises for some of
    them, so ported code that catches that keeps working."""


class MissingParamError(KeyError, ValueError):
    """A param group lacks the scheduled key (a KeyError as in MMEngine, a ValueError as before)."""

    def __str__(self) -> str:
        return str(self.args[0])


def read_value(group: dict, name: str) -> float:
    """``group[name]``; for ``'momentum'`` Adam's ``betas[0]`` where there is no momentum."""
    if name in group:
        return group[name]
    if name == "momentum" and "betas" in group:
        return group["betas"][0]
    raise MissingParamError(f"param group has no {name!r} to schedule; it has {sorted(group)}")


def write_value(group: dict, name: str, value: float) -> None:
    """Set what `read_value` reads."""
    if name == "momentum" and "betas" in group:
        group["betas"] = (value, *group["betas"][1:])
        if "momentum" in group:  # MMEngine's momentum schedulers mirror betas[0] there
            group["momentum"] = value
    else:
        group[name] = value


class ScheduleChain:
    """The chained value of one parameter's schedules as a function of (epoch, updates).

    Args:
        schedules: built schedules of one parameter, in the order MMEngine steps them.
        epoch_ends: updates done by the end of epoch ``e`` (a function of ``e``), which
            orders epoch steps among update steps when both kinds act on the parameter;
            None steps an epoch before the updates it contains.

    Example:
        >>> chain = ScheduleChain([MultiStepLR([1], gamma=0.1), PolyLR(eta_min=1e-3, end=3)])
        >>> chain.values([0.1], epoch=2, step=0)[0]
        0.001
    """

    def __init__(
        self, schedules: Sequence[Schedule], epoch_ends: Callable[[int], int] | None = None
    ):
        # Schedules with only a factor (the older protocol; MMCV's lr_config policies in
        # engine.compat) multiply the chained value, as MMCV's LrUpdaterHook does.
        self.schedules = [s for s in schedules if hasattr(s, "step_value")]
        self.factors = [s for s in schedules if not hasattr(s, "step_value")]
        self.epoch_ends = epoch_ends
        self._reset(None)

    def _reset(self, bases: list[float] | None) -> None:
        self._bases = bases
        self._values = list(bases) if bases is not None else None
        self._epoch = self._step = -1  # -1: not even the start has been applied

    def _apply(self, by_epoch: bool | None, count: int) -> None:
        for s in self.schedules:
            if (by_epoch is None or s.by_epoch == by_epoch) and s.begin <= count < s.end:
                t = count - s.begin
                self._values = [s.step_value(v, t, b) for v, b in zip(self._values, self._bases)]

    def values(self, bases: list[float], *, epoch: int, step: int) -> list[float]:
        """The values of params groups with base values `bases` at this epoch and update."""
        if bases != self._bases or epoch < self._epoch or step < self._step:
            self._reset(list(bases))  # another optimizer, or back in time: replay from 0
        if self._epoch < 0:
            self._apply(None, 0)
            self._epoch = self._step = 0
        while self._epoch < epoch or self._step < step:
            # The next epoch step comes once the updates of that epoch are done.
            boundary = self.epoch_ends(self._epoch + 1) if self.epoch_ends else -1
            if self._epoch < epoch and (self._step >= boundary or self._step >= step):
                self._epoch += 1
                self._apply(True, self._epoch)
            else:
                self._step += 1
                self._apply(False, self._step)
        values = list(self._values)
        for s in self.factors:
            count = epoch if s.by_epoch else step
            values = [v * s.factor_at(count, b) for v, b in zip(values, self._bases)]
        return values


def check_schedules(schedules: Sequence[Schedule]) -> None:
    for s in schedules:
        # Reading such a schedule per epoch would silently skip the conversion.
        if s.by_epoch and s.convert_to_iter_based:
            raise ValueError(
                "convert_to_iter_based=True is invalid; expected a schedule from to_iter_based() here"
            )


def apply_schedules(
    optimizer: Any,
    schedules: Sequence[Schedule],
    *,
    epoch: int,
    step: int,
    chains: dict | None = None,
    epoch_ends: Callable[[int], int] | None = None,
) -> None:
    """Set every param group's scheduled values for this epoch and update count.

    Each value is MMEngine's chained value, replayed from the base value, which is stored
    in the group as ``initial_<param_name>`` the first time, so the result depends only on
    the counts, and it travels with ``optimizer.state_dict()``.

    Args:
        optimizer: A torch optimizer or anything with ``param_groups``.
        schedules: Built schedules; epoch ones read ``epoch``, the others ``step``.
        epoch: The current epoch (0-based).
        step: Optimizer updates done so far.
        chains: A dict this function may keep its `ScheduleChain`s in between calls
            (a run passes one, so each call costs one step); None replays from 0.
        epoch_ends: see `ScheduleChain`.

    Example:
        >>> import torch
        >>> from engine.optim.scheduler.param_scheduler import StepLR
        >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> apply_schedules(opt, [StepLR(2, by_epoch=False)], epoch=0, step=4)
        >>> round(opt.param_groups[0]["lr"], 6), opt.param_groups[0]["initial_lr"]
        (0.001, 0.1)
    """
    check_schedules(schedules)
    chains = {} if chains is None else chains
    for name in dict.fromkeys(s.param_name for s in schedules):
        key = "initial_" + name
        for group in optimizer.param_groups:
            if key not in group:
                group[key] = read_value(group, name)
        chain = chains.get(name)
        if chain is None:
            mine = [s for s in schedules if s.param_name == name]
            chain = chains[name] = ScheduleChain(mine, epoch_ends)
        bases = [group[key] for group in optimizer.param_groups]
        for group, value in zip(
            optimizer.param_groups, chain.values(bases, epoch=epoch, step=step)
        ):
            write_value(group, name, value)


def epoch_end_updates(
    epoch_length: int, accumulative_counts: int, max_counts: int | None = None
) -> Callable[[int], int]:
    """Updates done by the end of each epoch, as a function of the number of epochs.

    Accumulation windows span epochs (10 batches, windows of 4: epochs end after 2, 5,
    7, 10 updates), and the run's last partial window is an update of its own at
    ``max_counts`` iterations. This maps epoch boundaries of converted schedules exactly.

    >>> ends = epoch_end_updates(10, 4, max_counts=30)
    >>> [ends(e) for e in range(4)]
    [0, 2, 5, 8]
    """

    def ends(epochs: int) -> int:
        iters = epochs * epoch_length
        last = max_counts is not None and iters == max_counts and iters % accumulative_counts
        return iters // accumulative_counts + (1 if last else 0)

    return ends

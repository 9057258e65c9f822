"""Setting scheduled values in an optimizer's param groups.

The schedules (`engine.optim.scheduler.param_scheduler`) only compute factors. `apply_schedules` reads the
base value each param group remembers (``initial_lr``, ``initial_momentum``...), multiplies
in the factors of all schedules of that parameter at the current counts, and writes the
result back, so a value depends on the counts alone and a resumed run gets it exactly.
``'momentum'`` means Adam's ``betas[0]`` where a group has no ``momentum``.

Example:
    >>> import torch
    >>> from engine.optim.scheduler.param_scheduler import LinearLR
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    >>> apply_schedules(opt, [LinearLR(start_factor=0.5, end=5)], epoch=0, step=0)
    >>> opt.param_groups[0]["lr"], opt.param_groups[0]["initial_lr"]
    (0.025, 0.05)
"""

from collections.abc import Sequence
from typing import Any, Protocol


class Schedule(Protocol):
    """What ``apply_schedules`` needs from a schedule."""

    param_name: str
    by_epoch: bool
    convert_to_iter_based: bool

    def factor_at(self, count: int, base: float) -> float: ...

    def to_iter_based(self, updates_per_epoch: int) -> "Schedule": ...


def _read(group: dict, name: str) -> float:
    if name in group:
        return group[name]
    if name == "momentum" and "betas" in group:
        return group["betas"][0]
    raise ValueError(f"param group has no {name!r}; it has {sorted(group)}")


def _write(group: dict, name: str, value: float) -> None:
    if name == "momentum" and "momentum" not in group:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group[name] = value


def apply_schedules(
    optimizer: Any, schedules: Sequence[Schedule], *, epoch: int, step: int
) -> None:
    """Set every param group's scheduled values for this epoch and update count.

    Each value is ``base * prod(factors)``. The base is stored in the group as
    ``initial_<param_name>`` the first time, so the result depends only on the
    counts, and it travels with ``optimizer.state_dict()``.

    Args:
        optimizer: A torch optimizer or anything with ``param_groups``.
        schedules: Built schedules; epoch ones read ``epoch``, the others ``step``.
        epoch: The current epoch (0-based).
        step: Optimizer updates done so far.

    Example:
        >>> import torch
        >>> from engine.optim.scheduler.param_scheduler import StepLR
        >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> apply_schedules(opt, [StepLR(2, by_epoch=False)], epoch=0, step=4)
        >>> round(opt.param_groups[0]["lr"], 6), opt.param_groups[0]["initial_lr"]
        (0.001, 0.1)
    """
    names = {s.param_name for s in schedules}
    for s in schedules:
        # Reading such a schedule per epoch would silently skip the conversion.
        if s.by_epoch and s.convert_to_iter_based:
            raise ValueError(
                "convert_to_iter_based=True is invalid; expected a schedule from to_iter_based() here"
            )
    for group in optimizer.param_groups:
        for name in names:
            key = "initial_" + name
            if key not in group:
                group[key] = _read(group, name)
            base = value = group[key]
            for s in schedules:
                if s.param_name == name:
                    value *= s.factor_at(epoch if s.by_epoch else step, base)
            _write(group, name, value)

"""When training validates: ``val_begin``, ``val_interval`` and MMEngine's ``dynamic_intervals``."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def check_dynamic_intervals(value: object) -> list[tuple[int, int]]:
    """``[(milestone, interval), ...]`` with increasing milestones and intervals >= 1."""
    pairs = list(value or [])
    ok = all(
        isinstance(p, list | tuple)
        and len(p) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in p)
        and p[1] >= 1
        for p in pairs
    )
    milestones = [p[0] for p in pairs] if ok else []
    if not ok or milestones != sorted(milestones):
        raise ValueError(
            "train_cfg dynamic_intervals must be [(milestone, interval), ...] with increasing "
            f"int milestones and intervals >= 1, got {value!r}"
        )
    return [tuple(p) for p in pairs]


def val_interval_at(val_interval: int, dynamic: Sequence[tuple[int, int]], count: int) -> int:
    """The interval in force when `count` epochs/iterations are done: `val_interval` until
    the first milestone is reached, then each milestone's (MMEngine's rule).

    >>> val_interval_at(1, [(3, 2)], 2), val_interval_at(1, [(3, 2)], 3)
    (1, 2)
    """
    milestones = [0] + [m for m, _ in dynamic]
    intervals = [val_interval] + [i for _, i in dynamic]
    return intervals[bisect.bisect(milestones, count) - 1]


def should_validate(cfg: dict, count: int, last: bool) -> bool:
    """Validate after `count` epochs/iterations? `cfg` is a parsed train_cfg."""
    if count < cfg["val_begin"]:
        return False
    interval = val_interval_at(cfg["val_interval"], cfg.get("dynamic_intervals") or (), count)
    return count % interval == 0 or last

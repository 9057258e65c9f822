"""MMCV's ``lr_config`` policies as engine schedules (pure functions of the count).

MMCV's ``LrUpdaterHook`` sets, before each iteration, the regular lr of the policy at the
current epoch (``by_epoch=True``) or iteration, times the warm-up factor while the
iteration is below ``warmup_iters``. Here the policy and the warm-up are two schedules whose
factors multiply, as engine chains schedules; the formulas are MMCV's.

Example:
    >>> schedules = lr_config_to_schedules(
    ...     dict(policy='step', step=[2, 3], warmup='linear', warmup_iters=10), max_epochs=5)
    >>> runner = Runner(..., param_scheduler=schedules)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from engine.optim.scheduler.param_scheduler import INF

_WARMUPS = ("constant", "linear", "exp")
_POLICIES = ("step", "CosineAnnealing", "poly", "fixed")


@dataclass(frozen=True)
class _MMCVSchedule:
    """The Schedule protocol (`engine.optim.scheduler.apply`) for MMCV's formulas."""

    by_epoch: bool = True
    begin: int = 0
    end: int = INF  # the Runner may fill it; MMCV's policies read their own limits
    convert_to_iter_based: bool = False
    param_name: str = "lr"

    def to_iter_based(self, updates_per_epoch: int) -> _MMCVSchedule:
        raise ValueError(f"{type(self).__name__} does not convert to iterations")


@dataclass(frozen=True)
class MMCVStepLr(_MMCVSchedule):
    """``policy='step'``: ``base * gamma ** k``, k the number of milestones reached
    (``step`` an int: every ``step`` counts), never below ``min_lr``."""

    step: int | tuple[int, ...] = 1
    gamma: float = 0.1
    min_lr: float | None = None

    def factor_at(self, count: int, base: float) -> float:
        if isinstance(self.step, int):
            k = count // self.step
        else:
            k = sum(count >= s for s in self.step)
        lr = base * self.gamma**k
        if self.min_lr is not None:
            lr = max(lr, self.min_lr)
        return lr / base


@dataclass(frozen=True)
class MMCVCosineLr(_MMCVSchedule):
    """``policy='CosineAnnealing'``: from base to ``min_lr`` (or ``base * min_lr_ratio``)
    along half a cosine over ``max_progress`` epochs or iterations."""

    max_progress: int = 1
    min_lr: float | None = None
    min_lr_ratio: float | None = None

    def factor_at(self, count: int, base: float) -> float:
        target = base * self.min_lr_ratio if self.min_lr_ratio is not None else self.min_lr
        lr = target + 0.5 * (base - target) * (1 + math.cos(math.pi * count / self.max_progress))
        return lr / base


@dataclass(frozen=True)
class MMCVPolyLr(_MMCVSchedule):
    """``policy='poly'``: ``(base - min_lr) * (1 - p / max_progress) ** power + min_lr``."""

    max_progress: int = 1
    power: float = 1.0
    min_lr: float = 0.0

    def factor_at(self, count: int, base: float) -> float:
        coeff = (1 - count / self.max_progress) ** self.power
        return ((base - self.min_lr) * coeff + self.min_lr) / base


@dataclass(frozen=True)
class MMCVFixedLr(_MMCVSchedule):
    """``policy='fixed'``: the base lr."""

    def factor_at(self, count: int, base: float) -> float:
        return 1.0


@dataclass(frozen=True)
class MMCVWarmup(_MMCVSchedule):
    """MMCV's warm-up over the first ``iters`` iterations (a factor on the regular lr):
    ``'constant'``: ratio; ``'linear'``: ``1 - (1 - i / iters) * (1 - ratio)``;
    ``'exp'``: ``ratio ** (1 - i / iters)``; 1 from ``iters`` on. With ``by_epoch=True``
    (MMCV's ``warmup_by_epoch``) ``iters`` counts epochs until the Runner converts it."""

    kind: str = "linear"
    iters: int = 0
    ratio: float = 0.1
    convert_to_iter_based: bool = field(default=False)

    def factor_at(self, count: int, base: float) -> float:
        if count >= self.iters:
            return 1.0
        if self.kind == "constant":
            return self.ratio
        if self.kind == "linear":
            return 1 - (1 - count / self.iters) * (1 - self.ratio)
        return self.ratio ** (1 - count / self.iters)

    def to_iter_based(self, updates_per_epoch: int) -> MMCVWarmup:
        return replace(
            self, iters=self.iters * updates_per_epoch, by_epoch=False, convert_to_iter_based=False
        )


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def lr_config_to_schedules(
    lr_config: dict | None, max_epochs: int | None = None, max_iters: int | None = None
) -> list:
    """MMCV's ``lr_config`` -> engine schedules for ``Runner(param_scheduler=...)``.

    Args:
        lr_config: ``dict(policy='step' | 'CosineAnnealing' | 'poly' | 'fixed', by_epoch=True,
            warmup=None | 'constant' | 'linear' | 'exp', warmup_iters=0, warmup_ratio=0.1,
            warmup_by_epoch=False, **policy arguments)``; ``None`` keeps the lr fixed.
        max_epochs, max_iters: The run's length (cosine and poly anneal over it).

    Returns:
        The list of schedules (the policy, then the warm-up if any).

    Raises:
        ValueError: an unknown policy, warm-up or argument, in one line.
    """
    if lr_config is None:
        return []
    if not isinstance(lr_config, dict):
        raise TypeError(
            f"lr_config must be a dict such as dict(policy='step', step=[8, 11]), got {lr_config!r}"
        )
    cfg = dict(lr_config)
    policy = cfg.pop("policy", None)
    if policy not in _POLICIES:
        raise ValueError(
            f"lr_config policy {policy!r} is not supported; accepted: {', '.join(_POLICIES)}"
        )
    by_epoch = cfg.pop("by_epoch", True)
    warmup = cfg.pop("warmup", None)
    warmup_iters = cfg.pop("warmup_iters", 0)
    warmup_ratio = cfg.pop("warmup_ratio", 0.1)
    warmup_by_epoch = cfg.pop("warmup_by_epoch", False)
    schedules: list = [_policy(policy, cfg, by_epoch, max_epochs, max_iters)]
    if warmup is not None:
        if warmup not in _WARMUPS:
            raise ValueError(
                f"lr_config warmup {warmup!r} is unknown; accepted: None, {', '.join(_WARMUPS)}"
            )
        if not _positive_int(warmup_iters):
            raise ValueError(f"lr_config warmup_iters must be an int >= 1, got {warmup_iters!r}")
        if not 0 < warmup_ratio <= 1:
            raise ValueError(f"lr_config warmup_ratio must be in (0, 1], got {warmup_ratio!r}")
        schedules.append(
            MMCVWarmup(
                kind=warmup,
                iters=warmup_iters,
                ratio=warmup_ratio,
                by_epoch=bool(warmup_by_epoch),
                convert_to_iter_based=bool(warmup_by_epoch),
            )  # fmt: skip
        )
    return schedules


def _policy(policy: str, cfg: dict, by_epoch: bool, max_epochs: int | None, max_iters: int | None):
    accepted = {
        "step": {"step", "gamma", "min_lr"},
        "CosineAnnealing": {"min_lr", "min_lr_ratio"},
        "poly": {"power", "min_lr"},
        "fixed": set(),
    }[policy]
    unknown = set(cfg) - accepted
    if unknown:
        raise ValueError(
            f"lr_config policy={policy!r} does not take {sorted(unknown)}; accepted: {sorted(accepted)}"
        )
    if policy == "fixed":
        return MMCVFixedLr(by_epoch=by_epoch)
    if policy == "step":
        step = cfg.get("step")
        ok = _positive_int(step) or (
            isinstance(step, (list, tuple)) and step and all(_positive_int(s) for s in step)
        )
        if not ok:
            raise ValueError(f"lr_config step must be an int >= 1 or a list of them, got {step!r}")
        step = step if isinstance(step, int) else tuple(step)
        return MMCVStepLr(
            by_epoch=by_epoch, step=step, gamma=cfg.get("gamma", 0.1), min_lr=cfg.get("min_lr")
        )
    limit = max_epochs if by_epoch else max_iters
    if not _positive_int(limit):
        raise ValueError(
            f"lr_config policy={policy!r} anneals over the run: give max_{'epochs' if by_epoch else 'iters'}"
        )
    if policy == "poly":
        return MMCVPolyLr(by_epoch=by_epoch, max_progress=limit, power=cfg.get("power", 1.0),
                          min_lr=cfg.get("min_lr", 0.0))  # fmt: skip
    if ("min_lr" in cfg) == ("min_lr_ratio" in cfg):
        raise ValueError(
            "lr_config policy='CosineAnnealing' takes exactly one of min_lr and min_lr_ratio"
        )
    return MMCVCosineLr(by_epoch=by_epoch, max_progress=limit, min_lr=cfg.get("min_lr"),
                        min_lr_ratio=cfg.get("min_lr_ratio"))  # fmt: skip

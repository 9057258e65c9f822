"""`EarlyStoppingHook`: stop training when a validation metric stops improving."""

from __future__ import annotations

import logging
import math
from typing import Any

from engine.hooks.hook import Hook

logger = logging.getLogger("engine")

_GREATER = (
    "acc",
    "top",
    "ap",
    "ar",
    "auc",
    "precision",
    "recall",
    "f1",
    "psnr",
    "ssim",
    "miou",
    "dice",
)
_LESS = ("loss", "error", "err", "mse", "mae", "rmse", "fid")


def infer_rule(metric: str) -> str:
    """``'greater'`` for accuracy-like names, ``'less'`` for loss-like ones.

    >>> infer_rule('accuracy/top1'), infer_rule('val/loss')
    ('greater', 'less')
    """
    name = metric.rsplit("/", 1)[-1].lower()
    if any(key in name for key in _LESS):
        return "less"
    if any(key in name for key in _GREATER):
        return "greater"
    raise ValueError(
        f"cannot tell whether {metric!r} should grow or shrink; pass rule='greater' or rule='less'"
    )


class EarlyStoppingHook(Hook):
    """Set ``state.should_stop`` once ``monitor`` has not improved for ``patience``
    validations (MMEngine's arguments and meaning).

    Args:
        monitor: the metric key, e.g. ``'accuracy/top1'``.
        rule: ``'greater'`` or ``'less'``; inferred from the name when None.
        min_delta: the smallest change that counts as an improvement.
        strict: raise if ``monitor`` is missing from the metrics (else warn and skip).
        check_finite: stop at once when the metric is NaN or infinite.
        patience: validations without improvement before stopping.
        stopping_threshold: stop as soon as the metric reaches this value.

    Example:
        >>> hook = EarlyStoppingHook('accuracy/top1', patience=3)
    """

    priority = "LOWEST"

    def __init__(
        self,
        monitor: str,
        rule: str | None = None,
        min_delta: float = 0.1,
        strict: bool = False,
        check_finite: bool = True,
        patience: int = 5,
        stopping_threshold: float | None = None,
    ) -> None:
        if rule not in (None, "greater", "less"):
            raise ValueError(
                f"EarlyStoppingHook rule must be 'greater', 'less' or None, got {rule!r}"
            )
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStoppingHook patience must be an int >= 1, got {patience!r}")
        self.monitor = monitor
        self.rule = rule or infer_rule(monitor)
        self.min_delta = abs(min_delta)
        self.strict = strict
        self.check_finite = check_finite
        self.patience = patience
        self.stopping_threshold = stopping_threshold
        self.best: float | None = None
        self.wait_count = 0

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.rule == "greater":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        metrics = metrics or {}
        if self.monitor not in metrics:
            message = f"EarlyStoppingHook: metric {self.monitor!r} not in the validation metrics {sorted(metrics)}"
            if self.strict:
                raise KeyError(message)
            logger.warning(message)
            return
        value = float(metrics[self.monitor])
        reason = None
        if self.check_finite and not math.isfinite(value):
            reason = f"{self.monitor} is {value}"
        elif self.stopping_threshold is not None and (
            value >= self.stopping_threshold
            if self.rule == "greater"
            else value <= self.stopping_threshold
        ):
            reason = f"{self.monitor} = {value:.4f} reached the threshold {self.stopping_threshold}"
        elif self._improved(value):
            self.best, self.wait_count = value, 0
        else:
            self.wait_count += 1
            if self.wait_count >= self.patience:
                reason = f"{self.monitor} has not improved for {self.patience} validations (best {self.best:.4f})"
        if reason is not None:
            logger.info(
                "Early stopping at epoch %d, iteration %d: %s",
                runner.state.epoch,
                runner.state.iter,
                reason,
            )
            runner.state.should_stop = True

    def state_dict(self) -> dict:
        return {"best": self.best, "wait_count": self.wait_count}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait_count = state["best"], state["wait_count"]

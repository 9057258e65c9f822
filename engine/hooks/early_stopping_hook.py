"""`EarlyStoppingHook`: stop training when a validation metric stops improving (MMEngine's)."""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

from engine.hooks.best_rule import check_rule, infer_rule
from engine.hooks.hook import Hook

logger = logging.getLogger("engine")


class EarlyStoppingHook(Hook):
    """Stop training once ``monitor`` has not improved for ``patience`` validations.

    "Better" is the rule `CheckpointHook(save_best=...)` uses (`engine.hooks.best_rule`).
    As in MMEngine, a value counts as an improvement when it is at least ``min_delta``
    better than the best so far (``>=``), and stopping sets ``runner.train_loop.stop_training``
    (engine's loops stop at the end of the current epoch/validation).

    Args:
        monitor: the metric key, e.g. ``'accuracy/top1'``.
        rule: ``'greater'`` or ``'less'``; inferred from the name when None.
        min_delta: the smallest change that counts as an improvement.
        strict: raise if ``monitor`` is missing from the metrics (else warn and skip).
        check_finite: stop at once when the metric is NaN or infinite.
        patience: validations without improvement before stopping (0: the first one).
        stopping_threshold: stop as soon as the metric is better than this value.

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
        check_rule(rule, "EarlyStoppingHook")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStoppingHook patience must be an int >= 0, got {patience!r}")
        self.monitor = monitor
        self.rule = rule or infer_rule(monitor)
        self.min_delta = abs(min_delta)
        self.strict = strict
        self.check_finite = check_finite
        self.patience = patience
        self.stopping_threshold = stopping_threshold
        self.best_score = -math.inf if self.rule == "greater" else math.inf
        self.wait_count = 0

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.rule == "greater" else a < b

    def _stop_reason(self, value: Any) -> str | None:
        """Update the best score and the wait count; the reason to stop, or None."""
        if self.check_finite and not math.isfinite(float(value)):
            return f"{self.monitor} is {value} (best so far {self.best_score:.4f})"
        if self.stopping_threshold is not None and self._better(value, self.stopping_threshold):
            self.best_score = value
            return f"{self.monitor} = {value:.4f} is {self.rule} than {self.stopping_threshold}"
        step = self.min_delta if self.rule == "greater" else -self.min_delta
        if self._better(self.best_score + step, value):  # short of best + min_delta
            self.wait_count += 1
            if self.wait_count >= self.patience:
                return (
                    f"{self.monitor} has not improved for {self.wait_count} validations "
                    f"(best {self.best_score:.4f})"
                )
            return None
        self.best_score, self.wait_count = value, 0
        return None

    def before_run(self, runner: Any) -> None:
        loop = getattr(runner, "train_loop", None)
        assert loop is None or hasattr(loop, "stop_training"), (
            f"EarlyStoppingHook needs runner.train_loop.stop_training; {type(loop).__name__} "
            "has none"
        )

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        metrics = metrics or {}
        if self.monitor not in metrics:
            message = (
                f"EarlyStoppingHook: metric {self.monitor!r} is not in the validation "
                f"metrics {sorted(metrics)}"
            )
            if self.strict:
                raise RuntimeError(message + "; pass strict=False to skip such validations")
            warnings.warn(message + "; early stopping skips this validation", stacklevel=2)
            return
        reason = self._stop_reason(metrics[self.monitor])  # a tensor stays one (as MMEngine)
        if reason is None:
            return
        logger.info("Early stopping: %s", reason)
        loop = getattr(runner, "train_loop", None)
        if loop is not None:  # the Runner's loop object sets state.should_stop
            loop.stop_training = True
        else:
            runner.state.should_stop = True

    def state_dict(self) -> dict:
        return {"best": float(self.best_score), "wait_count": self.wait_count}

    def load_state_dict(self, state: dict) -> None:
        best = state["best"]
        self.best_score = self.best_score if best is None else best
        self.wait_count = state["wait_count"]

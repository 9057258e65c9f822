"""`PrepareTTAHook`: MMEngine's test-time augmentation: wrap the model in a `BaseTTAModel`.

Before testing, the runner's model becomes ``tta_cfg``'s `BaseTTAModel` subclass around it:
each test batch (a dataset whose pipeline returns lists of augmented views) runs once per
view and the predictions merge per sample (`engine.model.BaseTTAModel`).
`build_runner_with_tta` (`engine.hooks.test_time_aug_hook`) sets such a run up from a config.
"""

from __future__ import annotations

from typing import Any

from engine.hooks.hook import Hook
from engine.model import BaseTTAModel
from engine.registry import MODELS


class PrepareTTAHook(Hook):
    """Wraps ``runner.model`` in the TTA model of ``tta_cfg`` before testing.

    Args:
        tta_cfg: ``dict(type=<BaseTTAModel subclass or registered name>, ...)``; the
            runner's model is passed as its ``module``.
    """

    def __init__(self, tta_cfg: dict) -> None:
        self.tta_cfg = tta_cfg

    def before_test(self, runner: Any) -> None:
        if isinstance(runner.model, BaseTTAModel):
            return  # a second test() keeps the wrapper it has
        if not isinstance(self.tta_cfg, dict) or "type" not in self.tta_cfg:
            raise TypeError(
                f"PrepareTTAHook tta_cfg must be dict(type=<BaseTTAModel subclass>, ...), "
                f"got {self.tta_cfg!r}"
            )
        kind = self.tta_cfg["type"]
        cls = MODELS.get(kind) if isinstance(kind, str) else kind
        if not (isinstance(cls, type) and issubclass(cls, BaseTTAModel)):
            raise TypeError(
                f"PrepareTTAHook tta_cfg type {kind!r} is not a BaseTTAModel subclass "
                "(a class, or a name registered with engine.registry.MODELS)"
            )
        model = runner.model
        if not callable(getattr(model, "test_step", None)):  # a DDP-style wrapper
            model = model.module
        args = {k: v for k, v in self.tta_cfg.items() if k != "type"}
        runner.model = cls(module=model, **args)

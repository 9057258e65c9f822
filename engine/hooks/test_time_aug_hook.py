"""MMEngine's ``mmengine.hooks.test_time_aug_hook``: `PrepareTTAHook` and `build_runner_with_tta`."""

from __future__ import annotations

from typing import Any

from engine.hooks.prepare_tta_hook import PrepareTTAHook
from engine.registry import RUNNERS

__all__ = ["PrepareTTAHook", "build_runner_with_tta"]


def build_runner_with_tta(cfg: Any) -> Any:
    """A runner whose test set uses ``cfg.tta_pipeline`` and whose model is wrapped in
    ``cfg.tta_model`` when testing starts.

    Args:
        cfg: a Runner config with ``tta_model`` and ``tta_pipeline`` (and ``runner_type``,
            a name registered in `engine.registry.RUNNERS`, default ``'Runner'``).

    Returns:
        The built runner, with a `PrepareTTAHook` registered.
    """
    missing = [key for key in ("tta_model", "tta_pipeline") if key not in cfg]
    if missing:
        raise ValueError(f"build_runner_with_tta needs {' and '.join(missing)} in the config")
    cfg["test_dataloader"]["dataset"]["pipeline"] = cfg["tta_pipeline"]
    # Looked up by name: hooks do not import the runner (engine.runner registers it).
    runner_cls = RUNNERS.get(cfg.get("runner_type", "Runner"))
    if runner_cls is None:
        raise ValueError(f"runner_type {cfg.get('runner_type')!r} is not registered in RUNNERS")
    runner = runner_cls.from_cfg(cfg)
    runner.register_hook(PrepareTTAHook(tta_cfg=cfg["tta_model"]))
    return runner

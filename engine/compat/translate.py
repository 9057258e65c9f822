"""MMCV's runner configs (``optimizer``, ``optimizer_config``, ``lr_config``, ``log_config``,
``checkpoint_config``) translated into engine's `Runner` arguments.

Example:
    >>> kwargs = mmcv_to_runner_kwargs(optimizer=dict(type='SGD', lr=0.01),
    ...     optimizer_config=dict(grad_clip=dict(max_norm=35)),
    ...     lr_config=dict(policy='step', step=[8, 11]), log_config=dict(interval=50),
    ...     max_epochs=12)
    >>> runner = Runner(model=as_engine_model(model), work_dir=..., train_dataloader=...,
    ...                 train_cfg=dict(by_epoch=True, max_epochs=12), **kwargs)
"""

from __future__ import annotations

from typing import Any

import torch

from engine.compat.lr_config import lr_config_to_schedules
from engine.hooks.checkpoint_hook import CheckpointHook
from engine.hooks.logger_hook import LoggerHook
from engine.optim.optim_wrapper import OptimWrapper
from engine.optim.optim_wrapper_dict import OptimWrapperDict

# MMCV logger hooks -> Accelerate trackers (TextLoggerHook is engine's LoggerHook itself).
_TRACKERS = {
    "TextLoggerHook": None,
    "TensorboardLoggerHook": "tensorboard",
    "WandbLoggerHook": "wandb",
    "MlflowLoggerHook": "mlflow",
}
_OPTIMIZER_HOOKS = ("OptimizerHook", "Fp16OptimizerHook")


def optimizer_to_optim_wrapper(optimizer: Any, optimizer_config: dict | None) -> Any:
    """MMCV's ``optimizer`` (a torch optimizer, ``dict(type='SGD', ...)``, or a dict of
    either keyed by sub-module) and ``optimizer_config`` -> engine's ``optim_wrapper``.

    ``optimizer_config``: ``dict(grad_clip=dict(max_norm=..., norm_type=2))`` becomes the
    wrapper's ``clip_grad``; ``type='Fp16OptimizerHook'`` (``loss_scale``) an fp16
    ``AmpOptimWrapper``. ``None`` (a model stepping itself) leaves the optimizers plain.
    """
    cfg = dict(optimizer_config or {})
    kind = cfg.pop("type", "OptimizerHook")
    if kind not in _OPTIMIZER_HOOKS:
        raise ValueError(
            f"optimizer_config type {kind!r} is not supported; accepted: {', '.join(_OPTIMIZER_HOOKS)}"
        )
    clip = cfg.pop("grad_clip", None)
    loss_scale = cfg.pop("loss_scale", None)
    cfg.pop("distributed", None)  # engine always runs under Accelerate's process group
    if cfg:
        raise ValueError(
            f"optimizer_config has unsupported keys {sorted(cfg)}; accepted: type, grad_clip, loss_scale"
        )
    if isinstance(optimizer, torch.optim.Optimizer) or (
        isinstance(optimizer, dict) and "type" in optimizer
    ):
        return _one(optimizer, clip, kind, loss_scale)
    if isinstance(optimizer, dict) and optimizer:
        members = {name: _one(sub, clip, kind, loss_scale) for name, sub in optimizer.items()}
        if all(isinstance(m, OptimWrapper) for m in members.values()):
            return OptimWrapperDict(**members)
        return members  # dicts keyed by sub-module: the Runner builds the OptimWrapperDict
    raise TypeError(
        "optimizer must be a torch optimizer, dict(type='SGD', lr=...), or a dict of them keyed "
        f"by sub-module, got {optimizer!r}"
    )


def _one(optimizer: Any, clip: dict | None, kind: str, loss_scale: Any) -> Any:
    if isinstance(optimizer, torch.optim.Optimizer):
        if kind != "OptimizerHook":
            raise ValueError(
                "Fp16OptimizerHook needs the optimizer as a dict, e.g. dict(type='SGD', lr=0.01)"
            )
        return OptimWrapper(optimizer, clip_grad=clip)
    if not isinstance(optimizer, dict) or "type" not in optimizer:
        raise TypeError(
            f"an optimizer must be a torch optimizer or dict(type=..., lr=...), got {optimizer!r}"
        )
    out: dict = {"optimizer": dict(optimizer), "clip_grad": clip}
    if kind == "Fp16OptimizerHook":
        out.update(type="AmpOptimWrapper", dtype="float16")
        if loss_scale is not None:
            out["loss_scale"] = loss_scale
    return out


def log_config_to_hooks(log_config: dict | None) -> tuple[LoggerHook | None, list[str] | None]:
    """``dict(interval=50, hooks=[dict(type='TextLoggerHook'), ...])`` -> (engine's
    `LoggerHook`, the Accelerate trackers for ``Runner(log_with=...)``)."""
    if log_config is None:
        return None, None
    cfg = dict(log_config)
    interval = cfg.pop("interval", 10)
    hooks = cfg.pop("hooks", [dict(type="TextLoggerHook")])
    trackers = []
    for hook in hooks:
        kind = hook.get("type") if isinstance(hook, dict) else None
        if kind not in _TRACKERS:
            raise ValueError(
                f"log_config hook {hook!r} is not supported; accepted types: {sorted(_TRACKERS)}"
            )
        if _TRACKERS[kind] is not None:
            trackers.append(_TRACKERS[kind])
    cfg.pop("by_epoch", None)  # engine's LoggerHook logs by iteration inside epochs, as MMCV's
    if cfg:
        raise ValueError(
            f"log_config has unsupported keys {sorted(cfg)}; accepted: interval, hooks, by_epoch"
        )
    return LoggerHook(interval=interval), trackers or None


def mmcv_to_runner_kwargs(
    optimizer: Any,
    optimizer_config: dict | None = None,
    lr_config: dict | None = None,
    log_config: dict | None = None,
    checkpoint_config: dict | None = None,
    max_epochs: int | None = None,
    max_iters: int | None = None,
) -> dict:
    """The `Runner` keyword arguments equivalent to an MMCV runner's configs.

    Returns:
        ``dict(optim_wrapper=..., param_scheduler=..., default_hooks=..., log_with=...)``;
        pass ``train_cfg`` (the run's length) yourself.
    """
    logger_hook, trackers = log_config_to_hooks(log_config)
    default_hooks: dict[str, Any] = {"logger": logger_hook}
    if checkpoint_config is not None:
        ckpt = dict(checkpoint_config)
        ckpt.setdefault("by_epoch", max_epochs is not None)
        default_hooks["checkpoint"] = CheckpointHook(**ckpt)
    return {
        "optim_wrapper": optimizer_to_optim_wrapper(optimizer, optimizer_config),
        "param_scheduler": lr_config_to_schedules(lr_config, max_epochs, max_iters) or None,
        "default_hooks": default_hooks,
        "log_with": trackers,
    }

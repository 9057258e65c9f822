"""The MMCV side of the migration: MMCV models and runner configs, trained on engine.

`as_engine_model` adapts a model whose ``train_step(data, optimizer)`` returns
``dict(loss=..., log_vars=..., num_samples=...)`` (or steps its optimizers itself);
`mmcv_to_runner_kwargs` and `lr_config_to_schedules` translate ``optimizer_config``,
``lr_config`` and ``log_config``; `Runner`/`EpochBasedRunner`/`IterBasedRunner` keep MMCV's
``register_training_hooks`` + ``run`` API on top of engine's `Runner`.
"""

from engine.compat.lr_config import lr_config_to_schedules
from engine.compat.model_adapter import MMCVModel, as_engine_model
from engine.compat.runner import EpochBasedRunner, IterBasedRunner, Runner, get_logger
from engine.compat.translate import (
    log_config_to_hooks,
    mmcv_to_runner_kwargs,
    optimizer_to_optim_wrapper,
)

__all__ = [
    "EpochBasedRunner",
    "IterBasedRunner",
    "MMCVModel",
    "Runner",
    "as_engine_model",
    "get_logger",
    "log_config_to_hooks",
    "lr_config_to_schedules",
    "mmcv_to_runner_kwargs",
    "optimizer_to_optim_wrapper",
]

"""`FlexibleRunner`: MMEngine's Runner for large models, configured by a `strategy`.

MMEngine's ``FlexibleRunner(strategy=dict(type=...))`` names how the model is spread over
the processes. Here each strategy becomes what the `Runner` already does through Accelerate:

| strategy | becomes |
| --- | --- |
| ``None``, ``'SingleDeviceStrategy'``, ``'DDPStrategy'`` | the Runner's default (DDP under a launcher); ``model_wrapper=dict(...)`` gives DDP options |
| ``'FSDPStrategy'`` | ``model_wrapper='fsdp2'``: torch's ``fully_shard`` on each repeated block, on any backend |
| ``'DeepSpeedStrategy'`` | an Accelerator with a ``DeepSpeedPlugin`` built from the strategy's DeepSpeed settings (needs DeepSpeed and GPUs) |

ColossalAI has no Accelerate integration and is refused in one line. FSDP1 options that
FSDP2 has no use for (``auto_wrap_policy``, ``sharding_strategy``...) are named once in
the log and left out; FSDP2 shards each repeated block instead.

Example:
    >>> runner = FlexibleRunner(model, work_dir='work_dirs', strategy=dict(type='FSDPStrategy'),
    ...                         train_dataloader=loader, optim_wrapper=dict(optimizer=dict(type='AdamW')),
    ...                         train_cfg=dict(by_epoch=True, max_epochs=10))
"""

from __future__ import annotations

import logging
from typing import Any

from engine.runner.accelerate_setup import make_accelerator
from engine.runner.runner import Runner

logger = logging.getLogger("engine")

_PLAIN = ("SingleDeviceStrategy", "DDPStrategy")
_FSDP2_OPTIONS = ("reshard_after_forward",)
# MMEngine's DeepSpeedStrategy arguments that are not DeepSpeed config sections.
_NOT_DEEPSPEED_CONFIG = ("inputs_to_half", "exclude_frozen_parameters", "config")


def strategy_arguments(strategy: dict | None) -> dict[str, Any]:
    """The `Runner` arguments (``model_wrapper`` or ``accelerator``) that MMEngine's
    `strategy` stands for.

    Raises:
        TypeError/ValueError: a strategy that is not ``dict(type=<name>, ...)`` with one of
            the names above.
        ImportError: ``'DeepSpeedStrategy'`` where DeepSpeed is not installed.
    """
    if strategy is None:
        return {}
    if not isinstance(strategy, dict) or not isinstance(strategy.get("type"), str):
        raise TypeError(
            f"strategy must be dict(type='DDPStrategy' | 'FSDPStrategy' | 'DeepSpeedStrategy', "
            f"...) or None, got {strategy!r}"
        )
    cfg = dict(strategy)
    kind = cfg.pop("type")
    if kind in _PLAIN:
        options = cfg.pop("model_wrapper", None)
        _log_ignored(kind, cfg)
        return (
            {"model_wrapper": {"type": "MMDistributedDataParallel", **options}} if options else {}
        )
    if kind == "FSDPStrategy":
        options = dict(cfg.pop("model_wrapper", None) or {})
        options.pop("type", None)
        kept = {key: options.pop(key) for key in _FSDP2_OPTIONS if key in options}
        _log_ignored(kind, {**cfg, **options})
        return {"model_wrapper": {"type": "fsdp2", **kept}}
    if kind == "DeepSpeedStrategy":
        try:
            import deepspeed  # noqa: F401  (Accelerate's plugin needs it at prepare time)
            from accelerate.utils import DeepSpeedPlugin
        except ImportError:
            raise ImportError(
                "strategy DeepSpeedStrategy needs DeepSpeed (pip install deepspeed) and GPUs; "
                "without them use strategy=dict(type='FSDPStrategy')"
            ) from None
        config = {**(cfg.get("config") or {})}
        config.update({k: v for k, v in cfg.items() if k not in _NOT_DEEPSPEED_CONFIG})
        plugin = DeepSpeedPlugin(hf_ds_config=config)
        return {"accelerator": make_accelerator(deepspeed_plugin=plugin)}
    raise ValueError(
        f"strategy type {kind!r} is not supported; accepted: {[*_PLAIN, 'FSDPStrategy', 'DeepSpeedStrategy']}"
        " (ColossalAI has no Accelerate integration)"
    )


def _log_ignored(kind: str, options: dict) -> None:
    if options:
        logger.info("%s: %s have no counterpart in engine and are left out", kind, sorted(options))


class FlexibleRunner(Runner):
    """A `Runner` whose model placement is given as MMEngine's `strategy` (see the module
    doc); every other argument is the Runner's. MMEngine's ``DeepSpeedOptimWrapper`` is
    engine's `OptimWrapper`, which hands clipping and accumulation to DeepSpeed itself.

    Raises:
        ValueError: a `strategy` together with ``model_wrapper`` or ``accelerator``.
    """

    def __init__(self, model: Any, *, strategy: dict | None = None, **kwargs: Any) -> None:
        if strategy is not None and (kwargs.get("model_wrapper") or kwargs.get("accelerator")):
            raise ValueError(
                "give FlexibleRunner a strategy or model_wrapper/accelerator, not both"
            )
        optim_wrapper = kwargs.get("optim_wrapper")
        if isinstance(optim_wrapper, dict) and optim_wrapper.get("type") == "DeepSpeedOptimWrapper":
            kwargs["optim_wrapper"] = {**optim_wrapper, "type": "OptimWrapper"}
        super().__init__(model, **kwargs, **strategy_arguments(strategy))

"""Distributed model wrappers: Accelerate's default, per-module ('separate') and custom.

The process group always comes from the launcher (``accelerate launch``, ``torchrun``);
this module only decides *what* Accelerate wraps.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from engine.model import attach_wrapper

_SEPARATE_NAMES = ("separate", "MMSeparateDistributedDataParallel")
_DEFAULT_NAMES = ("MMDistributedDataParallel", "MMFullyShardedDataParallel")


def wrap_model(model: nn.Module, accelerator: Any, model_wrapper: Any = None) -> nn.Module:
    """Prepare `model` for the run and return what the loops should hold.

    Args:
        model: the user's model (an `engine.BaseModel`).
        accelerator: the run's ``Accelerator``.
        model_wrapper: ``None`` (Accelerate wraps the whole model: DDP, FSDP, DeepSpeed
            as configured); ``'separate'`` (also MMEngine's
            ``'MMSeparateDistributedDataParallel'`` or ``dict(type=...)`` of it) prepares
            every direct child with trainable parameters on its own, as GANs need; or a
            callable ``(model, accelerator) -> model`` installing a custom wrapper.

    Returns:
        The model the loops call ``train_step`` on.
    """
    if isinstance(model_wrapper, dict):
        cfg = dict(model_wrapper)
        kind = cfg.pop("type", None)
        if cfg:
            # DDP options belong to Accelerate's DistributedDataParallelKwargs, not here.
            raise ValueError(
                f"model_wrapper options {sorted(cfg)} are not taken here; pass "
                "DistributedDataParallelKwargs to the Accelerator (kwargs_handlers) instead"
            )
        model_wrapper = kind
    if model_wrapper is None or model_wrapper in _DEFAULT_NAMES:
        prepared = accelerator.prepare_model(model)
        attach_wrapper(accelerator.unwrap_model(prepared), prepared)
        return prepared
    if model_wrapper in _SEPARATE_NAMES:
        return _wrap_separately(model, accelerator)
    if callable(model_wrapper):
        wrapped = model_wrapper(model, accelerator)
        if not hasattr(wrapped, "train_step"):
            raise TypeError(
                f"model_wrapper {getattr(model_wrapper, '__name__', model_wrapper)!r} returned "
                f"{type(wrapped).__name__}, which has no train_step"
            )
        return wrapped
    raise ValueError(
        f"model_wrapper {model_wrapper!r} is unknown; accepted: None, 'separate' "
        "(or 'MMSeparateDistributedDataParallel'), or a callable (model, accelerator) -> model"
    )


def _wrap_separately(model: nn.Module, accelerator: Any) -> nn.Module:
    model.to(accelerator.device)
    for name, child in list(model.named_children()):
        if any(p.requires_grad for p in child.parameters()):
            setattr(model, name, accelerator.prepare_model(child))
    return model

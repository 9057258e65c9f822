"""Initialise a model from its ``init_cfg`` when training starts, as MMEngine's Runner does."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

logger = logging.getLogger("engine")


def has_init_cfg(model: nn.Module) -> bool:
    """Whether any module of `model` sets an ``init_cfg`` (`engine.model.BaseModule`)."""
    return any(getattr(m, "init_cfg", None) for m in model.modules())


def init_model_weights(model: nn.Module, accelerator: Any) -> bool:
    """Call ``model.init_weights()`` when an ``init_cfg`` asks for it; every process then
    takes the main process's values, so unseeded draws cannot leave the ranks apart.

    MMEngine's Runner calls ``init_weights()`` on every model; here only a tree that sets an
    ``init_cfg`` somewhere is initialised, because ``init_weights`` also reaches children
    that define their own (a pretrained Hugging Face model would be re-initialised).

    Returns:
        Whether the model was initialised.
    """
    if not callable(getattr(model, "init_weights", None)) or not has_init_cfg(model):
        return False
    if getattr(model, "is_init", False):
        return False
    model.init_weights()
    if accelerator.num_processes > 1 and torch.distributed.is_initialized():
        for tensor in model.state_dict().values():
            if type(tensor).__name__ != "DTensor":  # sharded: each rank owns its part
                torch.distributed.broadcast(tensor.data, src=0)
    return True

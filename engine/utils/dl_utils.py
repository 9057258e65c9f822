"""Deep-learning facts with MMEngine's names (``mmengine.utils.dl_utils``)."""

from __future__ import annotations

import torch
from torch import nn

TORCH_VERSION = torch.__version__


def mmcv_full_available() -> bool:
    """engine never needs MMCV's compiled ops; ported tests that skip without them do."""
    return False


def is_norm(layer: nn.Module) -> bool:
    """Whether `layer` is a batch, group, layer or instance normalisation."""
    norms = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
    return isinstance(layer, norms + (nn.modules.instancenorm._InstanceNorm,))


def has_batch_norm(model: nn.Module) -> bool:
    """Whether `model` contains a batch normalisation layer."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

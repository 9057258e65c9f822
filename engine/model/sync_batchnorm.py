"""Convert BatchNorm layers to SyncBatchNorm for multi-process training, and back.

`revert_sync_batchnorm` lets a model trained with SyncBatchNorm run in one process (a
notebook, a CPU): SyncBatchNorm needs a process group in training mode.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger("engine")

__all__ = ["convert_sync_batchnorm", "revert_sync_batchnorm"]


class _BatchNormXd(nn.modules.batchnorm._BatchNorm):
    """A BatchNorm for inputs of any rank: what a SyncBatchNorm (which accepts any rank)
    becomes, since it does not record whether it replaced a 1d, 2d or 3d layer."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        return


def _copy_state(source: nn.Module, target: nn.Module) -> nn.Module:
    if source.affine:
        with torch.no_grad():
            target.weight = source.weight
            target.bias = source.bias
    target.running_mean = source.running_mean
    target.running_var = source.running_var
    target.num_batches_tracked = source.num_batches_tracked
    target.training = source.training
    if hasattr(source, "qconfig"):
        target.qconfig = source.qconfig
    return target


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every ``nn.SyncBatchNorm`` replaced by a plain BatchNorm sharing its
    parameters and statistics (the same module when it is itself one, a new one then).

    Args:
        module: a model or layer.

    Returns:
        The converted module (`module` itself unless it was a SyncBatchNorm).
    """
    out = module
    if isinstance(module, nn.SyncBatchNorm):
        out = _BatchNormXd(
            module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
        )  # fmt: skip
        out = _copy_state(module, out)
    for name, child in module.named_children():
        converted = revert_sync_batchnorm(child)
        if converted is not child:
            try:
                out.add_module(name, converted)
            except Exception:  # a module that refuses add_module keeps its layer, said once
                logger.warning("revert_sync_batchnorm: could not replace %s in %s", name,
                               type(module).__name__)  # fmt: skip
    return out


def convert_sync_batchnorm(module: nn.Module, implementation: str = "torch") -> nn.Module:
    """`module` with every BatchNorm replaced by ``nn.SyncBatchNorm`` (torch's conversion).

    Args:
        module: a model or layer.
        implementation: ``'torch'``; MMCV's SyncBatchNorm (``'mmcv'``) is not available here.
    """
    if implementation != "torch":
        raise ValueError(
            f"convert_sync_batchnorm implementation {implementation!r} is not available; "
            "accepted: 'torch'"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)

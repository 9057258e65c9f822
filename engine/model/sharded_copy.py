"""Copies of sharded (DTensor) models for averaging: each process keeps and updates its own shards.

FSDP2 (``fully_shard``) refuses ``copy.deepcopy``, and a copy would not run anyway: its
forward needs FSDP's all-gathers. An average of a sharded model needs only the tensors, so
`sharded_copy` rebuilds the model's module tree from plain ``nn.Module``s holding clones of
its parameters and buffers. DTensors stay DTensors, sharded like the model's, so the
average's state dict has the model's names and shardings (it saves and reshards through
``torch.distributed.checkpoint`` beside the model), and `local_shards` lets every update
work on each process's own shards with no communication.

Example:
    >>> average = sharded_copy(fsdp_model)         # same names, DTensor shards
    >>> torch._foreach_lerp_(local_shards(avg_tensors), local_shards(model_tensors), 0.01)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

try:  # torch builds without distributed support have no DTensor: nothing is sharded there
    from torch.distributed.tensor import DTensor
except ImportError:  # pragma: no cover
    DTensor = ()  # type: ignore[assignment,misc]

__all__ = ["ShardedParameters", "has_dtensors", "local_shards", "sharded_copy"]


def has_dtensors(model: nn.Module) -> bool:
    """Whether any parameter or buffer of `model` is a DTensor (FSDP2, tensor parallelism)."""
    return any(isinstance(t, DTensor) for t in (*model.parameters(), *model.buffers()))


def local_shards(tensors: Iterable[Tensor]) -> list[Tensor]:
    """Each tensor's local shard (the tensor itself when it is not a DTensor).

    Call under ``torch.no_grad()``: the shards then share storage with the DTensors, so
    in-place updates of the shards update the DTensors (as an optimizer step does).
    """
    return [t.to_local() if isinstance(t, DTensor) else t for t in tensors]


class ShardedParameters(nn.Module):
    """One module of `sharded_copy`'s tree: parameters and buffers, no forward."""

    def forward(self, *args, **kwargs):  # noqa: D401
        raise NotImplementedError(
            "the average of a sharded model holds each process's shards only and cannot run "
            "a forward; EMAHook evaluates it by swapping it into the model"
        )


def sharded_copy(model: nn.Module) -> nn.Module:
    """The parameters and buffers of `model`, cloned into a tree of `ShardedParameters`
    with `model`'s module names (so its state dict has `model`'s keys and shardings).

    Args:
        model: a model with DTensor parameters (e.g. after ``fully_shard``).

    Returns:
        The copy; its parameters do not require gradients; tied tensors stay tied.
    """
    clones: dict[int, Tensor] = {}

    def clone(t: Tensor, param: bool) -> Tensor:
        if id(t) not in clones:
            new = t.detach().clone()
            clones[id(t)] = nn.Parameter(new, requires_grad=False) if param else new
        return clones[id(t)]

    def copy_tree(module: nn.Module) -> nn.Module:
        new = ShardedParameters()
        for name, p in module._parameters.items():
            new._parameters[name] = None if p is None else clone(p, True)
        for name, b in module._buffers.items():
            persistent = name not in module._non_persistent_buffers_set
            new.register_buffer(name, None if b is None else clone(b, False), persistent)
        for name, child in module._modules.items():
            new._modules[name] = None if child is None else copy_tree(child)
        return new

    with torch.no_grad():
        return copy_tree(model)

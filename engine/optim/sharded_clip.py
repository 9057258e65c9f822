"""Clipping and the gradient norm where the gradients are sharded: FSDP1, DeepSpeed.

FSDP version 1 keeps each process's shard of the gradients. Accelerate's ``clip_grad_norm_``
calls the FSDP root's ``clip_grad_norm_`` (a norm over every shard) only when the parameters
it is given are exactly ``model.parameters()`` in that order; anything else (an optimizer's
param groups, parameters without a gradient skipped, one optimizer of several) falls back to
the norm of this process's shard alone, so each process clips by a different, too small
norm. Here the norm is always global: the root's own ``clip_grad_norm_`` when the optimizer
holds all of its parameters, else the shards' norms summed over the root's process group.

DeepSpeed clips and steps inside ``accelerator.backward`` (by its ``gradient_clipping``,
which `engine.runner.deepspeed_config` sets from ``clip_grad``); the optim wrapper only reads
the norm DeepSpeed computed.

Example:
    >>> roots = fsdp1_roots(accelerator._models)
    >>> norm = fsdp1_clip_grad_norm_(params, roots, max_norm=1.0, norm_type=2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def is_fsdp1_run(accelerator: Any) -> bool:
    """Whether `accelerator` runs Accelerate's FSDP version 1."""
    kind = getattr(getattr(accelerator, "distributed_type", None), "value", None)
    return kind == "FSDP" and not getattr(accelerator, "is_fsdp2", False)


def fsdp1_roots(models: Iterable[nn.Module]) -> list[nn.Module]:
    """The outermost FSDP1 modules in `models` (each one's ``clip_grad_norm_`` covers all of
    its parameters; an FSDP module inside another is a unit of the outer one)."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    roots: list[nn.Module] = []
    for model in models:
        inside: set[int] = set()
        for module in model.modules():
            if isinstance(module, FSDP) and id(module) not in inside:
                roots.append(module)
                inside.update(id(m) for m in module.modules())
    return roots


def fsdp1_clip_grad_norm_(
    params: list[torch.Tensor], roots: list[nn.Module], max_norm: float, norm_type: float = 2.0
) -> torch.Tensor:
    """Clip `params`' gradients (an optimizer's parameters, FSDP1-sharded) by their global norm.

    Call on every process (collective).

    Args:
        params: the optimizer's parameters (with or without gradients).
        roots: `fsdp1_roots` of the run's models.
        max_norm, norm_type: as ``torch.nn.utils.clip_grad_norm_``.

    Returns:
        The global norm before clipping, a device tensor, equal on every process.

    Raises:
        ValueError: no FSDP1 root holds `params` (one line, with what to do instead).
    """
    wanted = {id(p) for p in params}
    for root in roots:
        own = {id(p) for p in root.parameters()}
        if wanted == own:  # the whole root: FSDP's own, which knows every sharding strategy
            return root.clip_grad_norm_(max_norm, norm_type)
        if wanted <= own:
            return _clip_subset(params, root, float(max_norm), float(norm_type))
    raise ValueError(
        "clip_grad under FSDP version 1 found no FSDP module holding the optimizer's "
        "parameters; prepare the model with its optimizers (model_wrapper=None) or use "
        "FSDP2 (--fsdp_version 2 or model_wrapper='fsdp2')"
    )


def _clip_subset(
    params: list[torch.Tensor], root: nn.Module, max_norm: float, norm_type: float
) -> torch.Tensor:
    """Some of `root`'s parameters (one optimizer of several): each process holds a disjoint
    shard of their gradients (or all of them with NO_SHARD), so the global norm is the
    shards' norms reduced over the sharding group."""
    from torch.distributed.fsdp import ShardingStrategy

    grads = [p.grad for p in params if p.grad is not None and p.grad.numel() > 0]
    device = next((g.device for g in grads), _root_device(root))
    if grads:
        norms = torch.stack([n.float() for n in torch._foreach_norm(grads, norm_type)])
        local = norms.max() if math.isinf(norm_type) else norms.pow(norm_type).sum()
    else:  # this process's shard of these parameters is empty
        local = torch.zeros((), device=device)
    sharded = getattr(root, "sharding_strategy", None) != ShardingStrategy.NO_SHARD
    if sharded and dist.is_available() and dist.is_initialized():
        op = dist.ReduceOp.MAX if math.isinf(norm_type) else dist.ReduceOp.SUM
        dist.all_reduce(local, op=op, group=getattr(root, "process_group", None))
    total = local if math.isinf(norm_type) else local.pow(1.0 / norm_type)
    if grads:
        torch.nn.utils.clip_grads_with_norm_(grads, max_norm, total)
    return total


def _root_device(root: nn.Module) -> torch.device:
    handle = getattr(root, "compute_device", None)
    return handle if isinstance(handle, torch.device) else torch.device("cpu")


def deepspeed_grad_norm(accelerator: Any) -> torch.Tensor | None:
    """The global gradient norm DeepSpeed computed in its last step (before its clipping),
    as a device tensor; None before any step or when DeepSpeed kept none."""
    wrapped = getattr(accelerator, "deepspeed_engine_wrapped", None)
    if wrapped is None:
        return None
    norm = wrapped.engine.get_global_grad_norm()
    if norm is None or (not isinstance(norm, torch.Tensor) and norm < 0):
        return None
    return torch.as_tensor(norm, dtype=torch.float32, device=accelerator.device)

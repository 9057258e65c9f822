"""Gradient clipping for `OptimWrapper`: the ``clip_grad`` dict, checked, and its application.

``dict(max_norm=..., norm_type=2)`` clips by norm (the default type) and returns the norm as
a device tensor (logged as ``grad_norm`` without a host sync); ``dict(type='value',
clip_value=...)`` clips each element. With an Accelerator, clipping goes through it, so
fp16 gradients are unscaled first.

Example:
    >>> clip = parse_clip_grad(dict(max_norm=1.0))
    >>> grad_norm = clip_gradients(clip, optimizer, accelerator=None)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engine.optim.sharded_clip import fsdp1_clip_grad_norm_, fsdp1_roots, is_fsdp1_run


class ClipGradTypeError(TypeError, AssertionError):
    """``clip_grad`` is not a dict. Also an AssertionError, which MMEngine raises for it, so
    ported code that catches that keeps working."""


def parse_clip_grad(clip_grad: dict | None) -> tuple[str, dict] | None:
    """``(kind, kwargs)`` for `clip_gradients` (kind ``'norm'`` or ``'value'``), or ``None``
    when ``clip_grad`` is ``None``; a clear error for anything else."""
    if clip_grad is None:
        return None
    if not isinstance(clip_grad, dict):
        raise ClipGradTypeError(
            "clip_grad must be a dict such as dict(max_norm=1.0) or dict(type='value', "
            f"clip_value=1.0), got {type(clip_grad).__name__}. If `clip_grad` is not None it "
            "is that dict; None turns clipping off"
        )
    cfg = dict(clip_grad)
    # MMEngine's optimizer-wrapper tutorial writes dict(clip_value=0.2) for value clipping;
    # with no type and only that key, nothing else can be meant.
    kind = cfg.pop("type", "value" if set(cfg) == {"clip_value"} else "norm")
    if kind == "norm":
        if "max_norm" not in cfg:
            raise ValueError(
                f"clip_grad of type 'norm' needs max_norm, got keys {sorted(clip_grad)}"
            )
        unknown = set(cfg) - {"max_norm", "norm_type", "error_if_nonfinite"}
        if unknown:
            raise ValueError(
                f"clip_grad has unknown keys {sorted(unknown)}; accepted: max_norm, norm_type"
            )
        cfg.pop("error_if_nonfinite", None)
        return "norm", {
            "max_norm": _positive(cfg, "max_norm"),
            "norm_type": cfg.get("norm_type", 2),
        }
    if kind == "value":
        if set(cfg) != {"clip_value"}:
            raise ValueError(
                f"clip_grad of type 'value' takes exactly clip_value, got keys {sorted(cfg)}"
            )
        return "value", {"clip_value": _positive(cfg, "clip_value")}
    raise ValueError(f"clip_grad type {kind!r} is unknown; accepted: 'norm' (default) or 'value'")


def _positive(cfg: dict, key: str) -> float:
    # A negative bound would flip the gradients' sign rather than clip them.
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"clip_grad {key} must be a number > 0, got {value!r}")
    return float(value)


def clip_gradients(
    clip: tuple[str, dict], optimizer: Any, accelerator: Any = None
) -> torch.Tensor | None:
    """Clip the gradients of `optimizer`'s parameters as `parse_clip_grad` described.

    Returns:
        the total norm before clipping (a device tensor) for ``'norm'``; ``None`` for
        ``'value'``.
    """
    kind, cfg = clip
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if accelerator is None:
        if kind == "norm":
            return nn.utils.clip_grad_norm_(params, **cfg)
        nn.utils.clip_grad_value_(params, **cfg)
        return None
    if getattr(getattr(accelerator, "distributed_type", None), "value", None) == "FSDP":
        # Accelerate refuses value clipping under FSDP, but clamping each element of each
        # shard is exact. Its norm clipping matches our parameters against the model's
        # (order and all) and otherwise takes FSDP1's per-shard norm, or unscales FSDP2's
        # fp16 gradients twice: unscale once here, then a global norm (sharded_clip for
        # FSDP1; torch's own over FSDP2's DTensor gradients, reduced over every shard).
        accelerator.unscale_gradients(optimizer=optimizer)
        if kind == "value":
            nn.utils.clip_grad_value_(params, **cfg)
            return None
        if is_fsdp1_run(accelerator):
            every = [p for group in optimizer.param_groups for p in group["params"]]
            return fsdp1_clip_grad_norm_(every, fsdp1_roots(accelerator._models), **cfg)
        return nn.utils.clip_grad_norm_(params, **cfg)
    if kind == "value":
        accelerator.clip_grad_value_(params, **cfg)
        return None
    from accelerate.utils import DistributedType

    if (
        accelerator.mixed_precision == "fp16"
        and len(accelerator._optimizers) > 1
        and accelerator.distributed_type
        not in (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.XLA)
    ):
        # Accelerate's clip_grad_norm_ unscales *every* prepared optimizer; with two
        # (a GAN) the other one would be unscaled twice. Unscale only ours.
        accelerator.unscale_gradients(optimizer=optimizer)
        return nn.utils.clip_grad_norm_(params, **cfg)
    return accelerator.clip_grad_norm_(params, **cfg)


def grad_norm(optimizer: Any, norm_type: float = 2.0) -> torch.Tensor | None:
    """The total norm of `optimizer`'s gradients as a device tensor (no host sync), or None
    when no parameter has a gradient. Logged as ``grad_norm`` when nothing is clipped."""
    grads = [
        p.grad
        for group in optimizer.param_groups
        for p in group.get("params", ())  # a mocked optimizer's group may have none
        if p.grad is not None
    ]
    if not grads:
        return None
    norms = torch._foreach_norm(grads, norm_type)  # fused: a kernel per device and dtype
    device = norms[0].device
    return torch.linalg.vector_norm(
        torch.stack([n.to(device, torch.float32) for n in norms]), norm_type
    )

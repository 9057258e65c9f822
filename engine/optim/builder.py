"""Build optimizers and `OptimWrapper`s from MMEngine-style dicts, once, at the edge.

``dict(optimizer=dict(type='SGD', lr=0.01), accumulative_counts=2, clip_grad=None)``
becomes an `OptimWrapper`; a dict keyed by sub-module names becomes an
`OptimWrapperDict` over those sub-modules' parameters. The optimizer ``type`` is a
`torch.optim` class name or the class itself. Parameter groups (``paramwise_cfg``) and the
wrapper around the optimizer come from `engine.optim.default_constructor`, or from the
user's ``constructor`` class.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engine.optim.amp_optim_wrapper import AmpOptimWrapper
from engine.optim.default_constructor import DefaultOptimWrapperConstructor
from engine.optim.optim_wrapper import OptimWrapper
from engine.optim.optim_wrapper_dict import OptimWrapperDict
from engine.optim.optimizer_builder import build_optimizer, fast_implementation
from engine.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ["amp_precision", "build_optim_wrapper", "build_optimizer", "fast_implementation"]


class OptimWrapperConfigError(ValueError, AssertionError):
    """An ``optim_wrapper`` dict without what it needs. Also an AssertionError, which
    MMEngine raises for it, so ported code that catches that keeps working."""


_AMP_DTYPES = {None: "fp16", "float16": "fp16", "fp16": "fp16", "bfloat16": "bf16", "bf16": "bf16"}


def amp_precision(cfg: Any) -> str | None:
    """The Accelerate precision an MMEngine ``AmpOptimWrapper`` config asks for, else None.

    >>> amp_precision(dict(type='AmpOptimWrapper', dtype='bfloat16', optimizer=...))
    'bf16'
    """
    if isinstance(cfg, AmpOptimWrapper):
        return cfg.precision
    if isinstance(cfg, OptimWrapperDict):
        found = {amp_precision(w) for w in cfg.values()} - {None}
        return found.pop() if len(found) == 1 else None
    if not isinstance(cfg, dict):
        return None
    if cfg.get("type") in ("AmpOptimWrapper", AmpOptimWrapper):
        dtype = cfg.get("dtype")
        if dtype not in _AMP_DTYPES:
            raise ValueError(
                f"AmpOptimWrapper dtype {dtype!r} is unknown; accepted: 'float16', 'bfloat16'"
            )
        return _AMP_DTYPES[dtype]
    if "optimizer" not in cfg:  # keyed by sub-module: all members must agree
        found = {amp_precision(v) for v in cfg.values() if isinstance(v, dict)}
        found.discard(None)
        if len(found) > 1:
            raise ValueError(
                f"sub-module optim wrappers ask for different precisions {sorted(found)}; use one"
            )
        return found.pop() if found else None
    return None


def build_optim_wrapper(
    model: nn.Module, cfg: Any, accelerator: Any = None
) -> OptimWrapper | OptimWrapperDict:
    """Build an `OptimWrapper` (or `OptimWrapperDict`) for `model` from `cfg`.

    Args:
        model: the (unwrapped) model whose parameters are optimised.
        cfg: a built wrapper (returned as is), a torch optimizer, an MMEngine-style dict
            with ``optimizer`` (and optionally ``paramwise_cfg``, ``constructor``), or a dict
            keyed by sub-module names.
        accelerator: passed to the wrappers.

    Example:
        >>> build_optim_wrapper(model, dict(
        ...     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        ...     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0)))
    """
    if isinstance(cfg, OptimWrapper | OptimWrapperDict):
        return cfg
    if isinstance(cfg, torch.optim.Optimizer):
        return OptimWrapper(cfg, accelerator)
    if not isinstance(cfg, dict):
        raise TypeError(
            "optim_wrapper must be an OptimWrapper, OptimWrapperDict, torch optimizer or a dict such as "
            f"dict(optimizer=dict(type='SGD', lr=0.01)), got {type(cfg).__name__}"
        )
    if not cfg:
        raise OptimWrapperConfigError(
            "optim_wrapper is an empty dict; `optim_wrapper_cfg` must contain 'optimizer': "
            "expected dict(optimizer=dict(type='SGD', lr=0.01)) or one such dict per sub-module"
        )
    cfg = dict(cfg)
    constructor = cfg.pop("constructor", None)
    kind = cfg.get("type")
    if "optimizer" not in cfg and isinstance(kind, str) and _is_torch_optimizer(kind):
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items() if k != "type")
        raise ValueError(
            f"optim_wrapper=dict(type={kind!r}, ...) names an optimizer, not a wrapper; write "
            f"optim_wrapper=dict(optimizer=dict(type={kind!r}, {args}))"
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            f"{type(model).__name__} has no trainable parameters: every parameter has "
            "requires_grad=False (frozen); unfreeze some (requires_grad_(True)) before training"
        )
    if "optimizer" in cfg:
        return _construct(model, cfg, constructor, accelerator)
    if constructor not in (None, "MultiOptimWrapperConstructor"):
        # a port's constructor over the whole dict, MMEngine's pattern for several optimizers
        return _construct(model, cfg, constructor, accelerator, OptimWrapperDict)
    children = dict(model.named_children())
    members = {}
    for name, sub_cfg in cfg.items():
        if name not in children:
            raise ValueError(
                f"optim_wrapper key {name!r} is neither 'optimizer' nor a sub-module of the model; "
                f"sub-modules: {sorted(children)}"
            )
        if isinstance(sub_cfg, OptimWrapper):
            members[name] = sub_cfg
        elif isinstance(sub_cfg, dict) and "optimizer" in sub_cfg:
            sub_cfg = dict(sub_cfg)
            sub_constructor = sub_cfg.pop("constructor", None)
            members[name] = _construct(children[name], sub_cfg, sub_constructor, accelerator)
        else:
            raise TypeError(
                f"optim_wrapper[{name!r}] must be an OptimWrapper or dict(optimizer=...), got {sub_cfg!r}"
            )
    return OptimWrapperDict(**members)


def _construct(
    module: nn.Module,
    cfg: dict,
    constructor: Any,
    accelerator: Any,
    expected: type = OptimWrapper,
) -> Any:
    """A wrapper built by `DefaultOptimWrapperConstructor` or the user's constructor (a
    class, or a name registered in ``OPTIM_WRAPPER_CONSTRUCTORS``): MMEngine's
    ``constructor(optim_wrapper_cfg, paramwise_cfg)(model)``; an `OptimWrapperDict` when
    `expected` says so."""
    paramwise_cfg = cfg.pop("paramwise_cfg", None)
    if constructor is None:
        constructor = DefaultOptimWrapperConstructor
    elif isinstance(constructor, str):
        found = OPTIM_WRAPPER_CONSTRUCTORS.get(constructor)
        if found is None:
            # KeyError, as MMEngine's registry raises for a name it does not hold
            raise KeyError(
                f"optim_wrapper constructor {constructor!r} is unknown; pass the class itself "
                "(dict(constructor=MyConstructor, ...)), 'DefaultOptimWrapperConstructor' or a "
                "name registered in engine.registry.OPTIM_WRAPPER_CONSTRUCTORS"
            )
        constructor = found
    elif not callable(constructor):
        raise TypeError(f"optim_wrapper constructor must be a class or a name, got {constructor!r}")
    built = constructor(cfg, paramwise_cfg)
    if type(built).__call__ is DefaultOptimWrapperConstructor.__call__:
        wrapper = built(module, accelerator)
    else:  # the port's own __call__(model)
        wrapper = built(module)
        members = wrapper.values() if isinstance(wrapper, OptimWrapperDict) else [wrapper]
        for member in members:
            if accelerator is not None and getattr(member, "accelerator", 0) is None:
                member.attach(accelerator)
    if not isinstance(wrapper, expected):
        raise TypeError(
            f"optim_wrapper constructor {type(built).__name__} returned {type(wrapper).__name__}; "
            f"expected an {expected.__name__}"
        )
    return wrapper


def _is_torch_optimizer(name: str) -> bool:
    cls = getattr(torch.optim, name, None)
    return isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)

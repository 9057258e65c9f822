"""Build optimizers and `OptimWrapper`s from MMEngine-style dicts, once, at the edge.

``dict(optimizer=dict(type='SGD', lr=0.01), accumulative_counts=2, clip_grad=None)``
becomes an `OptimWrapper`; a dict keyed by sub-module names becomes an
`OptimWrapperDict` over those sub-modules' parameters. The optimizer ``type`` is a
`torch.optim` class name or the class itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engine.optim import OptimWrapper, OptimWrapperDict

_WRAPPER_TYPES = ("OptimWrapper", "AmpOptimWrapper")
_WRAPPER_KEYS = {"type", "optimizer", "accumulative_counts", "clip_grad", "dtype", "loss_scale"}
_AMP_DTYPES = {None: "fp16", "float16": "fp16", "fp16": "fp16", "bfloat16": "bf16", "bf16": "bf16"}


def build_optimizer(params: Any, cfg: dict | torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``dict(type='SGD', lr=0.01, ...)`` -> ``torch.optim.SGD(params, lr=0.01, ...)``."""
    if isinstance(cfg, torch.optim.Optimizer):
        return cfg
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise TypeError(
            f"optimizer must be a torch optimizer or dict(type='SGD', lr=...), got {cfg!r}"
        )
    cfg = dict(cfg)
    kind = cfg.pop("type")
    if isinstance(kind, type) and issubclass(kind, torch.optim.Optimizer):
        cls = kind
    else:
        cls = getattr(torch.optim, str(kind), None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            names = sorted(
                n
                for n, v in vars(torch.optim).items()
                if isinstance(v, type) and issubclass(v, torch.optim.Optimizer) and n != "Optimizer"
            )
            raise ValueError(
                f"optimizer type {kind!r} is not a torch.optim optimizer; accepted: {', '.join(names)}"
            )
    try:
        return cls(params, **cfg)
    except TypeError as err:
        raise TypeError(
            f"optimizer {cls.__name__} rejected its arguments {sorted(cfg)}: {err}"
        ) from None


def amp_precision(cfg: Any) -> str | None:
    """The Accelerate precision an MMEngine ``AmpOptimWrapper`` config asks for, else None.

    >>> amp_precision(dict(type='AmpOptimWrapper', dtype='bfloat16', optimizer=...))
    'bf16'
    """
    if not isinstance(cfg, dict):
        return None
    if cfg.get("type") == "AmpOptimWrapper":
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
            with ``optimizer``, or a dict keyed by sub-module names.
        accelerator: passed to the wrappers.
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
    if "optimizer" in cfg:
        return _build_one(model.parameters(), cfg, accelerator)
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
            members[name] = _build_one(children[name].parameters(), sub_cfg, accelerator)
        else:
            raise TypeError(
                f"optim_wrapper[{name!r}] must be an OptimWrapper or dict(optimizer=...), got {sub_cfg!r}"
            )
    return OptimWrapperDict(**members)


def _build_one(params: Any, cfg: dict, accelerator: Any) -> OptimWrapper:
    kind = cfg.get("type", "OptimWrapper")
    if kind not in _WRAPPER_TYPES:
        raise ValueError(
            f"optim_wrapper type {kind!r} is unknown; accepted: {', '.join(_WRAPPER_TYPES)}"
        )
    unknown = set(cfg) - _WRAPPER_KEYS
    if unknown:
        raise ValueError(
            f"optim_wrapper has unsupported keys {sorted(unknown)}; accepted: {sorted(_WRAPPER_KEYS)}"
        )
    optimizer = build_optimizer(params, cfg["optimizer"])
    return OptimWrapper(
        optimizer,
        accelerator,
        accumulative_counts=cfg.get("accumulative_counts", 1),
        clip_grad=cfg.get("clip_grad"),
    )

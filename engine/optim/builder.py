"""Build optimizers and `OptimWrapper`s from MMEngine-style dicts, once, at the edge.

``dict(optimizer=dict(type='SGD', lr=0.01), accumulative_counts=2, clip_grad=None)``
becomes an `OptimWrapper`; a dict keyed by sub-module names becomes an
`OptimWrapperDict` over those sub-modules' parameters. The optimizer ``type`` is a
`torch.optim` class name or the class itself.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from engine.optim.optim_wrapper import OptimWrapper
from engine.optim.optim_wrapper_dict import OptimWrapperDict

_WRAPPER_TYPES = ("OptimWrapper", "AmpOptimWrapper")
_WRAPPER_KEYS = {"type", "optimizer", "accumulative_counts", "clip_grad", "dtype", "loss_scale"}
# torch optimizers with a fused kernel on the CPU and CUDA (torch >= 2.4)
_FUSED_CLASSES = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)
# options that choose an implementation; a config naming any of them is left as it is
_IMPL_KEYS = {"fused", "foreach", "differentiable", "capturable"}
_AMP_DTYPES = {None: "fp16", "float16": "fp16", "fp16": "fp16", "bfloat16": "bf16", "bf16": "bf16"}


def build_optimizer(
    params: Any, cfg: dict | torch.optim.Optimizer, fast: bool = True
) -> torch.optim.Optimizer:
    """``dict(type='SGD', lr=0.01, ...)`` -> ``torch.optim.SGD(params, lr=0.01, ...)``.

    When `fast` and the dict names no implementation (``fused``, ``foreach``, ...), the
    fastest one torch has for the parameters is chosen: see `fast_implementation`.
    """
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
    params = [_listed(item) for item in params]  # inspected below, then handed to torch
    fast_options = fast_implementation(cls, params) if fast and not _IMPL_KEYS & set(cfg) else {}
    if fast_options:
        try:
            return cls(params, **cfg, **fast_options)
        except (RuntimeError, ValueError, TypeError):
            pass  # this torch build lacks the kernel, or the config rules it out: torch's choice
    try:
        return cls(params, **cfg)
    except (TypeError, ValueError) as err:  # e.g. lr='1e-3' from a YAML file, momentum=-1
        raise type(err)(f"optimizer {cls.__name__} rejected its arguments {cfg}: {err}") from None


def fast_implementation(cls: type, params: list) -> dict[str, bool]:
    """The implementation options that make `cls` fastest on `params`.

    ``fused=True`` (one kernel for all parameters) for torch's SGD, Adam and AdamW when
    every parameter is a floating-point tensor on one CPU or CUDA device; otherwise
    ``foreach`` as torch would pick it (True on CUDA, False on the CPU), stated up front
    so the optimizer does not probe every parameter on every step. Fused kernels give
    the same updates up to float rounding. Returns ``{}`` to leave the choice to torch.

    >>> fast_implementation(torch.optim.AdamW, list(model.parameters()))  # on a GPU
    {'fused': True}
    """
    tensors = []
    for item in params:
        group = item["params"] if isinstance(item, dict) else [item]
        tensors += [group] if isinstance(group, torch.Tensor) else group
    if not tensors or not all(type(p) in (torch.Tensor, nn.Parameter) for p in tensors):
        return {}
    devices = {p.device.type for p in tensors}
    if len(devices) != 1 or not devices <= {"cpu", "cuda"}:
        return {}
    if cls in _FUSED_CLASSES and all(torch.is_floating_point(p) for p in tensors):
        return {"fused": True}
    if "foreach" in inspect.signature(cls.__init__).parameters:
        return {"foreach": devices == {"cuda"}}
    return {}


def _listed(item: Any) -> Any:
    """A parameter group whose ``params`` may be a generator, with them in a list."""
    if isinstance(item, dict) and not isinstance(item.get("params"), list | torch.Tensor):
        return {**item, "params": list(item["params"])}
    return item


def _has_sparse_grads(model: nn.Module) -> bool:
    """Sparse embedding gradients rule out fused kernels (they only take dense ones)."""
    return any(getattr(m, "sparse", False) is True for m in model.modules())


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
    if not cfg:
        raise ValueError(
            "optim_wrapper is an empty dict; expected dict(optimizer=dict(type='SGD', lr=0.01)) or one such dict per sub-module"
        )
    fast = not _has_sparse_grads(model)
    if "optimizer" in cfg:
        return _build_one(model.parameters(), cfg, accelerator, fast)
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
            members[name] = _build_one(children[name].parameters(), sub_cfg, accelerator, fast)
        else:
            raise TypeError(
                f"optim_wrapper[{name!r}] must be an OptimWrapper or dict(optimizer=...), got {sub_cfg!r}"
            )
    return OptimWrapperDict(**members)


def _build_one(params: Any, cfg: dict, accelerator: Any, fast: bool = True) -> OptimWrapper:
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
    optimizer = build_optimizer(params, cfg["optimizer"], fast)
    return OptimWrapper(
        optimizer,
        accelerator,
        accumulative_counts=cfg.get("accumulative_counts", 1),
        clip_grad=cfg.get("clip_grad"),
    )

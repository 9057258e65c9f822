"""Building one torch optimizer from ``dict(type='SGD', lr=0.01, ...)``, with torch's fastest
implementation for the parameters (fused kernels where they exist)."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from engine.registry import OPTIMIZERS

# torch optimizers with a fused kernel on the CPU and CUDA (torch >= 2.4)
_FUSED_CLASSES = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)
# options that choose an implementation; a config naming any of them is left as it is
_IMPL_KEYS = {"fused", "foreach", "differentiable", "capturable"}


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
        # torch.optim's names, engine's (ZeroRedundancyOptimizer) and any a port registered
        # with @OPTIMIZERS.register_module(), in the registry of the current DefaultScope
        cls = None
        if isinstance(kind, str):
            cls = OPTIMIZERS.get(kind) or getattr(torch.optim, kind, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            names = sorted(
                n
                for n, v in vars(torch.optim).items()
                if isinstance(v, type) and issubclass(v, torch.optim.Optimizer) and n != "Optimizer"
            )
            raise ValueError(
                f"optimizer type {kind!r} is not a torch.optim optimizer; accepted: "
                f"{', '.join(names)} or a name registered in engine.registry.OPTIMIZERS"
            )
    _check_numbers(cls.__name__, cfg)
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


# Hyperparameters torch.optim takes as numbers (betas: a pair); a string here usually comes
# from a YAML or CLI value ('1e-2'), which torch reports only as a failed comparison.
_NUMBERS = {"lr", "momentum", "weight_decay", "eps", "dampening", "alpha", "lr_decay", "rho",
            "initial_accumulator_value", "max_iter", "momentum_decay", "lambd", "t0"}  # fmt: skip


def _check_numbers(name: str, cfg: dict) -> None:
    """A one-line ``TypeError`` for a hyperparameter that is not a number (e.g. lr='1e-2')."""
    for key, value in cfg.items():
        if key == "betas" and not (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(b, int | float) and not isinstance(b, bool) for b in value)
        ):
            raise TypeError(
                f"optimizer {name} betas must be a pair of numbers, got {value!r}; "
                "e.g. betas=(0.9, 0.999)"
            )
        number = isinstance(value, int | float | torch.Tensor) and not isinstance(value, bool)
        if key in _NUMBERS and not number:
            hint = f"; write {key}={value} without quotes" if isinstance(value, str) else ""
            raise TypeError(
                f"optimizer {name} {key} must be a number, got {value!r} "
                f"({type(value).__name__}){hint}"
            )


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

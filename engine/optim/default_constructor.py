"""`DefaultOptimWrapperConstructor`: MMEngine's ``paramwise_cfg`` (per-parameter lr and weight
decay multipliers), and building a wrapper around a built optimizer.

``paramwise_cfg`` keys, as in MMEngine:

- ``custom_keys``: ``{substring: dict(lr_mult=..., decay_mult=..., <other group keys>)}``;
  a parameter whose full name contains a key takes it (longest key first, then
  alphabetical) and no other rule applies to it.
- ``bias_lr_mult``: lr multiplier of biases (not those of norm layers).
- ``bias_decay_mult``, ``norm_decay_mult``, ``dwconv_decay_mult``, ``flat_decay_mult``:
  weight-decay multipliers of biases, of norm layers' weights and biases, of depth-wise
  convolutions, and of any 1-D parameter; the first that applies wins, in the order
  norm, bias, depth-wise, flat.
- ``bypass_duplicate``: skip a parameter already placed (shared between modules).

Example (no weight decay on norms and biases):
    >>> ctor = DefaultOptimWrapperConstructor(
    ...     dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
    ...     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
    >>> optim_wrapper = ctor(model)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engine.logging import current_logger
from engine.optim.amp_optim_wrapper import AmpOptimWrapper
from engine.optim.optim_wrapper import OptimWrapper
from engine.optim.optimizer_builder import build_optimizer
from engine.registry import OPTIM_WRAPPERS

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)  # fmt: skip
_PARAMWISE_KEYS = {
    "custom_keys", "bias_lr_mult", "bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult",
    "flat_decay_mult", "bypass_duplicate", "dcn_offset_lr_mult",
}  # fmt: skip
WRAPPER_KEYS = {"type", "optimizer", "accumulative_counts", "clip_grad", "dtype", "loss_scale", "use_fsdp"}  # fmt: skip
_WRAPPERS = {"OptimWrapper": OptimWrapper, "AmpOptimWrapper": AmpOptimWrapper}


def wrapper_class(cfg: dict) -> type:
    """The wrapper class ``cfg`` names; a clear error for an unknown type or key."""
    kind = cfg.get("type", "OptimWrapper")
    cls = kind if isinstance(kind, type) else _WRAPPERS.get(kind) or OPTIM_WRAPPERS.get(kind)
    if not (isinstance(cls, type) and issubclass(cls, OptimWrapper)):
        raise ValueError(
            f"optim_wrapper type {kind!r} is unknown; accepted: {', '.join(_WRAPPERS)}, an "
            "OptimWrapper class or one registered in engine.registry.OPTIM_WRAPPERS"
        )
    unknown = set(cfg) - WRAPPER_KEYS
    if unknown:
        raise ValueError(
            f"optim_wrapper has unsupported keys {sorted(unknown)}; accepted: "
            f"{sorted(WRAPPER_KEYS | {'paramwise_cfg', 'constructor'})}"
        )
    return cls


def wrap_optimizer(
    optimizer: torch.optim.Optimizer, cfg: dict, accelerator: Any = None
) -> OptimWrapper:
    """The wrapper ``cfg`` describes (``type``, ``accumulative_counts``, ``clip_grad``,
    AMP's ``dtype``/``loss_scale``) around a built optimizer."""
    cls = wrapper_class(cfg)
    kwargs = {k: v for k, v in cfg.items() if k not in ("type", "optimizer")}
    if not issubclass(cls, AmpOptimWrapper):
        for key in ("dtype", "loss_scale", "use_fsdp"):
            if key in kwargs:
                raise ValueError(f"optim_wrapper key {key!r} needs type='AmpOptimWrapper'")
    return cls(optimizer=optimizer, accelerator=accelerator, **kwargs)


class DefaultOptimWrapperConstructor:
    """Builds an optim wrapper for a model from MMEngine's ``optim_wrapper`` dict.

    Args:
        optim_wrapper_cfg: ``dict(optimizer=dict(type=..., lr=..., weight_decay=...), ...)``.
        paramwise_cfg: per-parameter rules (module docstring), or None.

    A user constructor (``optim_wrapper=dict(constructor=MyConstructor, ...)``) takes the
    same two arguments and is called with the model.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError(
                f"optim_wrapper_cfg should be a dict, got {type(optim_wrapper_cfg).__name__}"
            )
        if "optimizer" not in optim_wrapper_cfg:
            raise ValueError(
                f"optim_wrapper_cfg must contain 'optimizer'; it has {sorted(optim_wrapper_cfg)}"
            )
        self.optim_wrapper_cfg = dict(optim_wrapper_cfg)
        wrapper_class(self.optim_wrapper_cfg)  # bad keys are reported before any work
        self.optimizer_cfg = self.optim_wrapper_cfg.pop("optimizer")
        self.paramwise_cfg = {} if paramwise_cfg is None else paramwise_cfg
        self.base_lr = (
            self.optimizer_cfg.get("lr") if isinstance(self.optimizer_cfg, dict) else None
        )
        self.base_wd = (
            self.optimizer_cfg.get("weight_decay") if isinstance(self.optimizer_cfg, dict) else None
        )
        self._validate_cfg()

    def _validate_cfg(self) -> None:
        cfg = self.paramwise_cfg
        if not isinstance(cfg, dict):
            raise TypeError(f"paramwise_cfg should be None or a dict, got {type(cfg).__name__}")
        unknown = set(cfg) - _PARAMWISE_KEYS
        # A subclass (MMEngine's custom-constructor pattern) reads keys of its own.
        if unknown and type(self) is DefaultOptimWrapperConstructor:
            raise ValueError(
                f"paramwise_cfg has unknown keys {sorted(unknown)}; accepted: {sorted(_PARAMWISE_KEYS)}"
            )
        custom = cfg.get("custom_keys", {})
        if not isinstance(custom, dict):
            raise TypeError(
                f"If specified, custom_keys must be a dict, got {type(custom).__name__}"
            )
        decays = [
            k
            for k in ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult", "flat_decay_mult")
            if k in cfg
        ]
        decays += [f"custom_keys[{k!r}].decay_mult" for k, v in custom.items() if "decay_mult" in v]
        if decays and self.base_wd is None:
            raise ValueError(
                f"{decays[0]} needs the optimizer's weight_decay (base_wd should not be None)"
            )
        if (
            cfg.get("bias_lr_mult") is not None or any("lr_mult" in v for v in custom.values())
        ) and self.base_lr is None:
            raise ValueError("lr multipliers need the optimizer's lr")

    def param_groups(self, model: nn.Module) -> list[dict]:
        """One group per parameter, with its lr and weight decay after the rules."""
        groups: list[dict] = []
        self._add(groups, model, "", set())
        return groups

    def _add(self, groups: list[dict], module: nn.Module, prefix: str, seen: set) -> None:
        cfg = self.paramwise_cfg
        custom = cfg.get("custom_keys", {})
        keys = sorted(sorted(custom), key=len, reverse=True)
        is_norm = isinstance(module, _NORMS)
        is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups
        for name, param in module.named_parameters(recurse=False):
            full = f"{prefix}.{name}" if prefix else name
            if id(param) in seen:
                if cfg.get("bypass_duplicate", False):
                    current_logger().warning(
                        "%s is shared with an earlier module; skipped (bypass_duplicate=True)", full
                    )
                    continue
                raise ValueError(
                    f"some parameters appear in more than one parameter group: {full} "
                    "appears twice (shared between modules); "
                    "set paramwise_cfg=dict(bypass_duplicate=True) to keep its first group"
                )
            seen.add(id(param))
            if not param.requires_grad:
                current_logger().warning("%s is skipped since its requires_grad=False", full)
                continue
            group: dict[str, Any] = {"params": [param]}
            key = next((k for k in keys if k in f"{prefix}.{name}"), None)
            if key is not None:
                rule = custom[key]
                group["lr"] = (
                    self.base_lr * rule.get("lr_mult", 1.0) if self.base_lr is not None else None
                )
                if group["lr"] is None:
                    del group["lr"]
                if self.base_wd is not None:
                    group["weight_decay"] = self.base_wd * rule.get("decay_mult", 1.0)
                group.update({k: v for k, v in rule.items() if k not in ("lr_mult", "decay_mult")})
            else:
                self._default_rules(group, name, param, is_norm, is_dwconv)
            groups.append(group)
            extra = {k: v for k, v in group.items() if k != "params"}
            if extra:
                current_logger().debug("paramwise_options -- %s: %s", full, extra)
        for child_name, child in module.named_children():
            self._add(groups, child, f"{prefix}.{child_name}" if prefix else child_name, seen)

    def _default_rules(
        self, group: dict, name: str, param: Any, is_norm: bool, is_dwconv: bool
    ) -> None:
        cfg, wd = self.paramwise_cfg, self.base_wd
        if name == "bias" and not is_norm and cfg.get("bias_lr_mult") is not None:
            group["lr"] = self.base_lr * cfg["bias_lr_mult"]
        if wd is None:
            return
        if is_norm and cfg.get("norm_decay_mult") is not None:
            group["weight_decay"] = wd * cfg["norm_decay_mult"]
        elif name == "bias" and cfg.get("bias_decay_mult") is not None:
            group["weight_decay"] = wd * cfg["bias_decay_mult"]
        elif is_dwconv and cfg.get("dwconv_decay_mult") is not None:
            group["weight_decay"] = wd * cfg["dwconv_decay_mult"]
        elif param.ndim == 1 and cfg.get("flat_decay_mult") is not None:
            group["weight_decay"] = wd * cfg["flat_decay_mult"]

    def __call__(self, model: nn.Module, accelerator: Any = None) -> OptimWrapper:
        model = getattr(model, "module", model)  # a DDP-wrapped model's own parameters
        params = self.param_groups(model) if self.paramwise_cfg else model.parameters()
        optimizer = build_optimizer(params, self.optimizer_cfg, fast=not _sparse(model))
        return wrap_optimizer(optimizer, self.optim_wrapper_cfg, accelerator)


def _sparse(model: nn.Module) -> bool:
    """Sparse embedding gradients rule out fused kernels (they only take dense ones)."""
    return any(getattr(m, "sparse", False) is True for m in model.modules())

"""``init_cfg`` initialisers by name (``Constant``, ``Xavier``, ``Normal``, ``TruncNormal``,
``Uniform``, ``Kaiming``, ``Caffe2Xavier``, ``Pretrained``) and `initialize`.

``init_cfg`` is a dict or a list of dicts such as
``dict(type='Kaiming', layer='Conv2d', override=dict(name='head', type='Normal', std=0.01))``.
``type`` names an initialiser (`INITIALIZERS`) or is the class itself; ``layer`` selects
sub-modules by class name (their bases count too); ``override`` re-initialises named
children after the rest. `BaseModule.init_weights` calls `initialize`.

Example:
    >>> net = nn.Sequential(nn.Conv1d(3, 1, 3), nn.Linear(1, 2))
    >>> initialize(net, [dict(type='Constant', layer='Conv1d', val=1),
    ...                  dict(type='Constant', layer='Linear', val=2)])
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from engine.model.init_functions import (
    _check_distribution,
    bias_init_with_prob,
    constant_init,
    kaiming_init,
    normal_init,
    trunc_normal_init,
    uniform_init,
    update_init_info,
    xavier_init,
)

logger = logging.getLogger("engine")

__all__ = [
    "INITIALIZERS",
    "BaseInit",
    "Caffe2XavierInit",
    "ConstantInit",
    "KaimingInit",
    "NormalInit",
    "PretrainedInit",
    "TruncNormalInit",
    "UniformInit",
    "XavierInit",
    "build_initializer",
    "initialize",
]


# -- initialisers: what an init_cfg entry builds -------------------------------------------
def _class_names(module: nn.Module) -> set[str]:
    return {cls.__name__ for cls in type(module).__mro__}


class BaseInit:
    """An initialiser: applied to the sub-modules whose class (or a base) is in `layer`, or
    to every sub-module with a weight when built for an ``override`` (``wholemodule``).

    Args:
        bias: the value biases are filled with.
        bias_prob: if given, the bias is `bias_init_with_prob(bias_prob)` instead.
        layer: class name(s) to initialise, e.g. ``'Conv2d'`` or ``['Conv2d', 'Linear']``.
    """

    def __init__(
        self, *, bias: float = 0, bias_prob: float | None = None, layer: str | list | None = None
    ) -> None:
        if not isinstance(bias, (int, float)):
            raise TypeError(f"bias must be a number, got {type(bias).__name__}")
        if bias_prob is not None and not isinstance(bias_prob, float):
            raise TypeError(f"bias_prob must be a float, got {type(bias_prob).__name__}")
        if layer is not None and not isinstance(layer, (str, list)):
            raise TypeError(f"layer must be a str or a list of str, got {type(layer).__name__}")
        self.bias = bias_init_with_prob(bias_prob) if bias_prob is not None else bias
        self.layer = [layer] if isinstance(layer, str) else list(layer or [])
        self.wholemodule = False

    def fill(self, module: nn.Module) -> None:
        """Initialise one module (its own weight and bias)."""
        raise NotImplementedError

    def _info(self) -> str:
        return f"{type(self).__name__}: bias={self.bias}"

    def __call__(self, module: nn.Module) -> None:
        layers = set(self.layer)
        for m in module.modules():
            if self.wholemodule or layers & _class_names(m):
                self.fill(m)
        if hasattr(module, "_params_init_info"):
            update_init_info(module, self._info())


class ConstantInit(BaseInit):
    def __init__(self, val: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.val = val

    def fill(self, module: nn.Module) -> None:
        constant_init(module, self.val, self.bias)

    def _info(self) -> str:
        return f"ConstantInit: val={self.val}, bias={self.bias}"


class XavierInit(BaseInit):
    def __init__(self, gain: float = 1, distribution: str = "normal", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_distribution(distribution)
        self.gain, self.distribution = gain, distribution

    def fill(self, module: nn.Module) -> None:
        xavier_init(module, self.gain, self.bias, self.distribution)

    def _info(self) -> str:
        return f"XavierInit: gain={self.gain}, distribution={self.distribution}, bias={self.bias}"


class NormalInit(BaseInit):
    def __init__(self, mean: float = 0, std: float = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean, self.std = mean, std

    def fill(self, module: nn.Module) -> None:
        normal_init(module, self.mean, self.std, self.bias)

    def _info(self) -> str:
        return f"NormalInit: mean={self.mean}, std={self.std}, bias={self.bias}"


class TruncNormalInit(BaseInit):
    def __init__(
        self, mean: float = 0, std: float = 1, a: float = -2, b: float = 2, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.mean, self.std, self.a, self.b = mean, std, a, b

    def fill(self, module: nn.Module) -> None:
        trunc_normal_init(module, self.mean, self.std, self.a, self.b, self.bias)

    def _info(self) -> str:
        return (
            f"TruncNormalInit: a={self.a}, b={self.b}, mean={self.mean}, std={self.std}, "
            f"bias={self.bias}"
        )


class UniformInit(BaseInit):
    def __init__(self, a: float = 0, b: float = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.a, self.b = a, b

    def fill(self, module: nn.Module) -> None:
        uniform_init(module, self.a, self.b, self.bias)

    def _info(self) -> str:
        return f"UniformInit: a={self.a}, b={self.b}, bias={self.bias}"


class KaimingInit(BaseInit):
    def __init__(
        self,
        a: float = 0,
        mode: str = "fan_out",
        nonlinearity: str = "relu",
        distribution: str = "normal",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_distribution(distribution)
        self.a, self.mode, self.nonlinearity, self.distribution = (
            a,
            mode,
            nonlinearity,
            distribution,
        )

    def fill(self, module: nn.Module) -> None:
        kaiming_init(module, self.a, self.mode, self.nonlinearity, self.bias, self.distribution)

    def _info(self) -> str:
        return (
            f"KaimingInit: a={self.a}, mode={self.mode}, nonlinearity={self.nonlinearity}, "
            f"distribution={self.distribution}, bias={self.bias}"
        )


class Caffe2XavierInit(KaimingInit):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            a=1, mode="fan_in", nonlinearity="leaky_relu", distribution="uniform", **kwargs
        )


def _read_state_dict(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """Tensors by name from an engine checkpoint folder, a ``.safetensors`` file or a torch
    state dict (weights-only; its ``'state_dict'``/``'model'`` entry if it has one)."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"Pretrained checkpoint {str(checkpoint)!r} does not exist; expected a checkpoint "
            "folder, a .safetensors file or a .pt/.pth state dict (nothing is downloaded)"
        )
    if path.suffix == ".safetensors":
        return load_file(str(path))
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise TypeError(f"{path} holds a {type(data).__name__}, not a state dict")
    return data


class PretrainedInit:
    """Load weights from a file; with `prefix`, only the keys under it (prefix removed), so a
    detector's ``'backbone.'`` initialises a backbone. Loading is not strict: the missing
    and unexpected keys are logged.

    Args:
        checkpoint: an engine checkpoint folder, a ``.safetensors`` file or a ``.pt``/``.pth``.
        prefix: e.g. ``'backbone.'``; None loads every key.
        map_location: kept for MMEngine configs; tensors are read on the CPU, then copied.
    """

    def __init__(
        self, checkpoint: str, prefix: str | None = None, map_location: str | None = None
    ) -> None:
        self.checkpoint, self.prefix, self.map_location = checkpoint, prefix, map_location
        self.wholemodule = False

    def __call__(self, module: nn.Module) -> None:
        state = _read_state_dict(self.checkpoint)
        if self.prefix:
            prefix = self.prefix if self.prefix.endswith(".") else self.prefix + "."
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if not state:
                raise KeyError(f"{self.checkpoint} has no key starting with {prefix!r}")
        result = module.load_state_dict(state, strict=False)
        logger.info(
            "Loaded %s%s into %s (missing keys: %s; unexpected keys: %s)",
            self.checkpoint,
            f" [{self.prefix}]" if self.prefix else "",
            type(module).__name__,
            list(result.missing_keys)[:8],
            list(result.unexpected_keys)[:8],
        )
        if hasattr(module, "_params_init_info"):
            update_init_info(module, f"PretrainedInit: load from {self.checkpoint}")


INITIALIZERS: dict[str, type] = {
    "Constant": ConstantInit,
    "Xavier": XavierInit,
    "Normal": NormalInit,
    "TruncNormal": TruncNormalInit,
    "Uniform": UniformInit,
    "Kaiming": KaimingInit,
    "Caffe2Xavier": Caffe2XavierInit,
    "Pretrained": PretrainedInit,
}


def build_initializer(cfg: dict) -> Any:
    """``dict(type='Normal', std=0.01, ...)`` (or ``type=NormalInit``) -> an initialiser."""
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    cls = INITIALIZERS.get(kind) if isinstance(kind, str) else kind
    if kind is None or not (isinstance(cls, type) and callable(cls)):
        raise ValueError(
            f"init_cfg type {kind!r} is unknown; accepted: {sorted(INITIALIZERS)} or a class"
        )
    return cls(**cfg)


def _apply(module: nn.Module, cfg: dict, wholemodule: bool = False) -> None:
    init = build_initializer(cfg)
    init.wholemodule = wholemodule
    init(module)


def _apply_override(module: nn.Module, override: dict | list, cfg: dict) -> None:
    if not isinstance(override, (dict, list)):
        raise TypeError(
            f"override must be a dict or a list of dicts, got {type(override).__name__}"
        )
    for entry in [override] if isinstance(override, dict) else override:
        entry = copy.deepcopy(entry)
        name = entry.pop("name", None)
        if name is None:
            raise ValueError(f"an override needs the key 'name' (a child's name), got {entry}")
        if not entry:  # only a name: initialise that child as the enclosing cfg says
            entry.update(cfg)
        elif "type" not in entry:
            raise ValueError(f"an override with arguments needs a 'type', got {entry}")
        child = getattr(module, name, None)
        if not isinstance(child, nn.Module):
            raise RuntimeError(
                f"override names {name!r}, which is not a sub-module of {type(module).__name__}"
            )
        _apply(child, entry, wholemodule=True)


def initialize(module: nn.Module, init_cfg: dict | list[dict]) -> None:
    """Apply `init_cfg` (a dict or a list of dicts, in order) to `module`.

    Args:
        module: the module to initialise.
        init_cfg: ``dict(type=..., layer=..., override=..., **arguments)`` or a list of them.
    """
    if not isinstance(init_cfg, (dict, list)):
        raise TypeError(
            f"init_cfg must be a dict or a list of dicts, got {type(init_cfg).__name__}"
        )
    for cfg in [init_cfg] if isinstance(init_cfg, dict) else init_cfg:
        cfg = copy.deepcopy(cfg)  # one cfg may be shared by many blocks
        override = cfg.pop("override", None)
        _apply(module, cfg)
        if override is not None:
            cfg.pop("layer", None)
            _apply_override(module, override, cfg)

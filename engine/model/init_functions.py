"""MMEngine's weight-init helpers on one module: fill ``weight`` by a rule, ``bias`` with a
constant (`constant_init`, `normal_init`, `kaiming_init`...), and `update_init_info`.

Example:
    >>> kaiming_init(conv, mode='fan_in', bias=0.1)
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "constant_init",
    "kaiming_init",
    "normal_init",
    "trunc_normal_",
    "trunc_normal_init",
    "uniform_init",
    "update_init_info",
    "xavier_init",
]


# -- helpers on one module: fill `weight`, then `bias` with a constant ----------------------
def _fill_bias(module: nn.Module, bias: float) -> None:
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)


def _has_weight(module: nn.Module) -> bool:
    return getattr(module, "weight", None) is not None


def _check_distribution(distribution: str) -> None:
    if distribution not in ("uniform", "normal"):
        raise ValueError(f"distribution must be 'uniform' or 'normal', got {distribution!r}")


def constant_init(module: nn.Module, val: float, bias: float = 0) -> None:
    """``weight = val``, ``bias = bias``."""
    if _has_weight(module):
        nn.init.constant_(module.weight, val)
    _fill_bias(module, bias)


def xavier_init(
    module: nn.Module, gain: float = 1, bias: float = 0, distribution: str = "normal"
) -> None:
    """Glorot initialisation of the weight (``'normal'`` or ``'uniform'``)."""
    _check_distribution(distribution)
    if _has_weight(module):
        fill = nn.init.xavier_uniform_ if distribution == "uniform" else nn.init.xavier_normal_
        fill(module.weight, gain=gain)
    _fill_bias(module, bias)


def normal_init(module: nn.Module, mean: float = 0, std: float = 1, bias: float = 0) -> None:
    """Weight drawn from N(mean, std²)."""
    if _has_weight(module):
        nn.init.normal_(module.weight, mean, std)
    _fill_bias(module, bias)


def trunc_normal_(
    tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
) -> torch.Tensor:
    """Fill `tensor` from N(mean, std²) truncated to [a, b] (torch's own sampler)."""
    return nn.init.trunc_normal_(tensor, mean, std, a, b)


def trunc_normal_init(
    module: nn.Module, mean: float = 0, std: float = 1, a: float = -2, b: float = 2, bias: float = 0
) -> None:
    """Weight drawn from N(mean, std²) truncated to [a, b]."""
    if _has_weight(module):
        trunc_normal_(module.weight, mean, std, a, b)
    _fill_bias(module, bias)


def uniform_init(module: nn.Module, a: float = 0, b: float = 1, bias: float = 0) -> None:
    """Weight drawn from U(a, b)."""
    if _has_weight(module):
        nn.init.uniform_(module.weight, a, b)
    _fill_bias(module, bias)


def kaiming_init(
    module: nn.Module,
    a: float = 0,
    mode: str = "fan_out",
    nonlinearity: str = "relu",
    bias: float = 0,
    distribution: str = "normal",
) -> None:
    """He initialisation of the weight (MMEngine's default ``mode='fan_out'``)."""
    _check_distribution(distribution)
    if _has_weight(module):
        fill = nn.init.kaiming_uniform_ if distribution == "uniform" else nn.init.kaiming_normal_
        fill(module.weight, a=a, mode=mode, nonlinearity=nonlinearity)
    _fill_bias(module, bias)


def caffe2_xavier_init(module: nn.Module, bias: float = 0) -> None:
    """Caffe2's "XavierFill": Kaiming uniform, fan_in, leaky_relu with a=1."""
    kaiming_init(module, a=1, mode="fan_in", nonlinearity="leaky_relu", bias=bias,
                 distribution="uniform")  # fmt: skip


def bias_init_with_prob(prior_prob: float) -> float:
    """The bias whose sigmoid is `prior_prob`: ``-log((1 - p) / p)`` (focal-loss heads)."""
    return float(-math.log((1 - prior_prob) / prior_prob))


def update_init_info(module: nn.Module, init_info: str) -> None:
    """Record `init_info` for every parameter of `module` whose values `init_weights` changed.

    Only inside `BaseModule.init_weights` (which sets up ``module._params_init_info``); a
    parameter added or replaced meanwhile is an error, as MMEngine's is.
    """
    table = getattr(module, "_params_init_info", None)
    if table is None:
        raise AttributeError(f"{type(module).__name__} has no `_params_init_info` to update")
    for name, param in module.named_parameters():
        if param not in table:
            raise AssertionError(
                f"parameter {name!r} of {type(module).__name__} appeared during init_weights; "
                "do not add or replace parameters in init_weights"
            )
        mean = param.data.mean().cpu()
        if table[param]["tmp_mean_value"] != mean:
            table[param]["init_info"] = init_info
            table[param]["tmp_mean_value"] = mean

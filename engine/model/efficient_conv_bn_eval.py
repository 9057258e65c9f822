"""Evaluate conv -> BatchNorm pairs as one convolution with folded weights.

In eval mode a BatchNorm after a convolution is an affine map per channel, so the pair equals
one convolution with weight ``w * g / sqrt(var + eps)`` and a matching bias. Folding on the
fly (not once) keeps the layers trainable and their state dicts unchanged, and saves the
memory of the intermediate activation; in training mode the pair runs as before.

Example:
    >>> turn_on_efficient_conv_bn_eval(detector, 'backbone')
"""

from __future__ import annotations

from operator import attrgetter

import torch
import torch.fx
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

__all__ = [
    "efficient_conv_bn_eval_forward",
    "turn_on_efficient_conv_bn_eval",
    "turn_on_efficient_conv_bn_eval_for_single_model",
]


def efficient_conv_bn_eval_forward(bn: _BatchNorm, conv: _ConvNd, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))`` with `bn` in eval mode, computed as a single convolution."""
    channels = bn.running_var
    gamma = bn.weight if bn.weight is not None else torch.ones_like(channels)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(channels)
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(channels)
    scale = gamma * torch.rsqrt(bn.running_var + bn.eps)  # per output channel
    weight = conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    bias = beta + scale * (conv_bias - bn.running_mean)
    return conv._conv_forward(x, weight, bias)


def _conv_bn(bn: _BatchNorm, conv: _ConvNd, x: torch.Tensor) -> torch.Tensor:
    if bn.training:  # statistics of the batch: nothing to fold
        return bn(conv._conv_forward(x, conv.weight, conv.bias))
    return efficient_conv_bn_eval_forward(bn, conv, x)


def _fold_pairs(graph_module: torch.fx.GraphModule) -> int:
    """Replace every conv -> bn call pair whose conv output feeds only the bn."""
    modules = dict(graph_module.named_modules())
    graph = graph_module.graph
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], _BatchNorm):
            continue
        source = node.args[0]
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and isinstance(modules[source.target], _ConvNd)
            and len(source.users) == 1  # a conv output used elsewhere must still exist
        ):
            pairs.append((source, node))
    for conv_node, bn_node in pairs:
        with graph.inserting_before(conv_node):
            conv_ref = graph.get_attr(conv_node.target)
            bn_ref = graph.get_attr(bn_node.target)
            fused = graph.call_function(_conv_bn, (bn_ref, conv_ref, conv_node.args[0]))
        bn_node.replace_all_uses_with(fused)
        graph.erase_node(bn_node)
        graph.erase_node(conv_node)
    graph.lint()
    graph_module.recompile()
    return len(pairs)


def turn_on_efficient_conv_bn_eval_for_single_model(model: nn.Module) -> None:
    """Trace `model` with torch.fx and make its forward evaluate conv -> bn pairs folded.

    The model's modules and state dict are unchanged; only ``model.forward`` is replaced.
    """
    traced = torch.fx.symbolic_trace(model)
    _fold_pairs(traced)
    model.forward = traced.forward


def turn_on_efficient_conv_bn_eval(model: nn.Module, modules: list[str] | str) -> None:
    """Apply `turn_on_efficient_conv_bn_eval_for_single_model` to the named sub-modules."""
    for name in [modules] if isinstance(modules, str) else modules:
        turn_on_efficient_conv_bn_eval_for_single_model(attrgetter(name)(model))

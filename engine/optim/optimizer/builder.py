"""The optimizer names each library offers, under MMEngine's ``optim.optimizer.builder`` names.

engine registers nothing: ``dict(type='Name')`` is looked up in ``torch.optim`` and then in
`engine.registry.OPTIMIZERS`. These lists say which names the installed libraries provide,
for ported code that reads them (an uninstalled library gives an empty list).
"""

from __future__ import annotations

import importlib
import inspect

import torch


def _optimizer_names(module_name: str, base: type = torch.optim.Optimizer) -> list[str]:
    """The `base` subclasses a module exports by name; [] when it is not installed."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return []
    return sorted(
        name
        for name, value in vars(module).items()
        if inspect.isclass(value) and issubclass(value, base) and not name.startswith("_")
    )


TORCH_OPTIMIZERS = _optimizer_names("torch.optim")
DADAPTATION_OPTIMIZERS = _optimizer_names("dadaptation")
LION_OPTIMIZERS = _optimizer_names("lion_pytorch")
BITSANDBYTES_OPTIMIZERS = _optimizer_names("bitsandbytes.optim")
TRANSFORMERS_OPTIMIZERS = _optimizer_names("transformers.optimization")

__all__ = [
    "BITSANDBYTES_OPTIMIZERS",
    "DADAPTATION_OPTIMIZERS",
    "LION_OPTIMIZERS",
    "TORCH_OPTIMIZERS",
    "TRANSFORMERS_OPTIMIZERS",
]

"""Activation checkpointing of named sub-modules: recompute their forward in the backward pass.

MMEngine's ``turn_on_activation_checkpointing(model, modules)``, over
`torch.utils.checkpoint.checkpoint` (non-reentrant, so keyword arguments and inputs without
``requires_grad`` work, and the RNG state is replayed so dropout recomputes the same mask).
Gradients are unchanged; the checkpointed modules keep no activations between forward and
backward, trading compute for memory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["turn_on_activation_checkpointing"]


def _checkpointed(forward: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():  # evaluation: nothing to save, nothing to recompute
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    run._engine_checkpointed = True  # type: ignore[attr-defined]
    return run


def turn_on_activation_checkpointing(model: torch.nn.Module, modules: list[str] | str) -> None:
    """Checkpoint the activations of ``model``'s sub-modules named in ``modules``, in place.

    Args:
        model: the model holding the sub-modules.
        modules: dotted names as in ``model.named_modules()`` (``'backbone.layer1'``), or one.

    Raises:
        ValueError: a name that is not a sub-module of ``model`` (before any is changed).

    Example:
        >>> turn_on_activation_checkpointing(model, ['backbone.layer1', 'backbone.layer2'])
    """
    names = [modules] if isinstance(modules, str) else list(modules)
    found = []
    for name in names:
        try:
            module = attrgetter(name)(model)
        except AttributeError:
            module = None
        if not isinstance(module, torch.nn.Module):
            raise ValueError(
                f"activation checkpointing: {name!r} is not a sub-module of "
                f"{type(model).__name__}; give dotted names from model.named_modules()"
            )
        found.append(module)
    for module in found:
        if not getattr(module.forward, "_engine_checkpointed", False):  # twice is once
            module.forward = _checkpointed(module.forward)

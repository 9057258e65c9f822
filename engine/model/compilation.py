"""``torch.compile`` for a model, whole or by repeated blocks (regional compilation).

Compilation happens in place (as ``nn.Module.compile``): the model keeps its class, its
``train_step`` and its state-dict keys, so checkpoints of compiled and eager runs are
interchangeable. Regional compilation compiles each repeated block (a transformer's
layers) once per distinct shape instead of the whole graph: much shorter compile times
for nearly the same speed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

_COMPILE_KEYS = {"fullgraph", "dynamic", "backend", "mode", "options", "disable"}


def compile_model(model: nn.Module, cfg: bool | dict | None) -> nn.Module:
    """Compile `model` in place as `cfg` asks; returns `model`.

    Args:
        model: the (unwrapped) model.
        cfg: ``False``/``None`` (nothing), ``True`` (the whole forward), or a dict of
            ``torch.compile`` arguments (``mode``, ``fullgraph``, ``dynamic``, ``backend``,
            ``options``) plus ``regional``: ``True`` compiles every block of a repeated
            stack (children of a ``ModuleList``/``Sequential`` that share one class with
            sub-modules of their own), or a class, class name, or list of them compiles
            every module of those classes.

    Example:
        >>> compile_model(gpt, dict(regional=True, mode='max-autotune-no-cudagraphs'))
    """
    if cfg is None or cfg is False:
        return model
    if cfg is True:
        cfg = {}
    if not isinstance(cfg, dict):
        raise TypeError(
            f"compile must be a bool or a dict of torch.compile arguments, got {type(cfg).__name__}"
        )
    options = dict(cfg)
    regional = options.pop("regional", False)
    unknown = set(options) - _COMPILE_KEYS
    if unknown:
        raise ValueError(
            f"compile has unknown keys {sorted(unknown)}; accepted: regional, {', '.join(sorted(_COMPILE_KEYS))}"
        )
    if not regional:
        _compile_in_place(model, options)
        return model
    blocks = list(_blocks(model, regional))
    if not blocks:
        raise ValueError(
            f"compile=dict(regional={regional!r}) found no blocks to compile in {type(model).__name__}; "
            "pass regional=<block class or name>, or compile=True for the whole model"
        )
    for block in blocks:
        _compile_in_place(block, options)
    return model


def _compile_in_place(module: nn.Module, options: dict) -> None:
    """What ``module.compile(**options)`` does, through a function defined here.

    ``nn.Module.compile`` compiles the module's bound ``_call_impl``; for torch's own
    classes (``nn.TransformerEncoderLayer`` blocks, an ``nn.Sequential``) torch 2.13's
    dynamo then traces nothing and the module silently stays eager. Compiling a function
    that calls ``_call_impl`` traces them too (hooks included, as with ``compile()``).
    The attribute is the one ``compile()`` sets: ``nn.Module`` leaves it out of copies and
    pickles, so an EMA copy or a saved model is never tied to this compiled call.
    """
    call = module._call_impl

    def call_module(*args: Any, **kwargs: Any) -> Any:
        return call(*args, **kwargs)

    module._compiled_call_impl = torch.compile(call_module, **options)


def _blocks(module: nn.Module, regional: Any) -> Iterable[nn.Module]:
    """Blocks to compile, outermost first; nothing inside a chosen block is chosen again."""
    if regional is True:
        if isinstance(module, nn.ModuleList | nn.Sequential):
            children = list(module.children())
            kinds = {type(c) for c in children}
            if len(children) > 1 and len(kinds) == 1 and any(True for _ in children[0].children()):
                yield from children
                return
    elif _matches(module, regional):
        yield module
        return
    for child in module.children():
        yield from _blocks(child, regional)


def _matches(module: nn.Module, regional: Any) -> bool:
    wanted = regional if isinstance(regional, list | tuple | set) else [regional]
    for kind in wanted:
        if isinstance(kind, str):
            if type(module).__name__ == kind:
                return True
        elif isinstance(kind, type) and isinstance(module, kind):
            return True
    return False

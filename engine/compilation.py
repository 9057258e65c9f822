"""``torch.compile`` for a model, whole or by repeated blocks (regional compilation).

Compilation happens in place (``nn.Module.compile``): the model keeps its class, its
``train_step`` and its state-dict keys, so checkpoints of compiled and eager runs are
interchangeable. Regional compilation compiles each repeated block (a transformer's
layers) once per distinct shape instead of the whole graph: much shorter compile times
for nearly the same speed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
        model.compile(**options)
        return model
    blocks = list(_blocks(model, regional))
    if not blocks:
        raise ValueError(
            f"compile=dict(regional={regional!r}) found no blocks to compile in {type(model).__name__}; "
            "pass regional=<block class or name>, or compile=True for the whole model"
        )
    for block in blocks:
        block.compile(**options)
    return model


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

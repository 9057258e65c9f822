"""`BaseModule`: an ``nn.Module`` initialised by ``init_cfg``; `Sequential`, `ModuleList`, `ModuleDict`.

`BaseModule.init_weights` applies the module's own ``init_cfg`` (`engine.model.weight_init`),
then lets each child initialise itself (so an inner ``init_cfg`` wins over an outer one), and
loads ``Pretrained`` weights last. It runs once per module: a second call only warns. The top
call logs, for every parameter, which initialiser set it.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from torch import nn

from engine.logging.mm_logger import current_logger
from engine.model.init_functions import update_init_info
from engine.model.initializers import PretrainedInit, initialize
from engine.registry import MODEL_WRAPPERS, Registry

logger = logging.getLogger("engine")

__all__ = ["BaseModule", "ModuleDict", "ModuleList", "Sequential", "is_model_wrapper"]

_WRAPPER_NAMES = {
    "DataParallel",
    "DistributedDataParallel",
    "FullyShardedDataParallel",
    "MMDistributedDataParallel",
    "MMSeparateDistributedDataParallel",
    "MMFullyShardedDataParallel",
}


def is_model_wrapper(module: nn.Module, registry: Registry = MODEL_WRAPPERS) -> bool:
    """True for a distributed wrapper that holds the user's module as ``.module``: DDP,
    DataParallel, FSDP, engine's wrappers, or a class ported code registered in `registry`
    (``MODEL_WRAPPERS`` or a registry below it; the built-in wrappers count as
    ``MODEL_WRAPPERS``'s only)."""
    if registry is MODEL_WRAPPERS and any(
        cls.__name__ in _WRAPPER_NAMES for cls in type(module).__mro__
    ):
        return True
    return _registered_in(type(module), registry)


def _registered_in(cls: type, registry: Registry) -> bool:
    if any(isinstance(v, type) and issubclass(cls, v) for v in registry.module_dict.values()):
        return True
    return any(_registered_in(cls, child) for child in registry.children.values())


def _is_pretrained(cfg: dict) -> bool:
    return cfg.get("type") in ("Pretrained", PretrainedInit)


class BaseModule(nn.Module):
    """An ``nn.Module`` with MMEngine's ``init_cfg`` and ``init_weights()``.

    Args:
        init_cfg: a dict or list of dicts, e.g.
            ``[dict(type='Kaiming', layer='Conv2d'), dict(type='Constant', layer='BatchNorm2d',
            val=1)]`` or ``dict(type='Pretrained', checkpoint='backbone.pth', prefix='backbone.')``.

    Example:
        >>> class Head(BaseModule):
        ...     def __init__(self, init_cfg=dict(type='Normal', layer='Linear', std=0.01)):
        ...         super().__init__(init_cfg)
        ...         self.fc = nn.Linear(8, 2)
        >>> head = Head(); head.init_weights()
    """

    def __init__(self, init_cfg: dict | list[dict] | None = None) -> None:
        # BaseModel sets nn.Module up in __new__ (for subclasses that skip super().__init__());
        # doing it again would drop the children assigned since.
        if "_modules" not in self.__dict__:
            super().__init__()
        self._is_init = False
        self.init_cfg = copy.deepcopy(init_cfg)

    @property
    def is_init(self) -> bool:
        """Whether `init_weights` has run (set it to True to skip this module)."""
        return self.__dict__.get("_is_init", False)

    @is_init.setter
    def is_init(self, value: bool) -> None:
        self._is_init = value

    def init_weights(self) -> None:
        """Initialise from ``init_cfg`` and the children's own `init_weights`, once."""
        top = not hasattr(self, "_params_init_info")
        if top:
            self._start_init_info()
        try:
            if self.is_init:
                current_logger().warning(
                    "init_weights of %s has been called more than once; ignored",
                    type(self).__name__,
                )
            else:
                self._init_once()
        finally:
            if top:
                self._finish_init_info()

    def _init_once(self) -> None:
        cfgs = self.init_cfg or []
        cfgs = [cfgs] if isinstance(cfgs, dict) else list(cfgs)
        if not all(isinstance(c, dict) for c in cfgs):
            raise TypeError(f"{type(self).__name__}.init_cfg must be a dict or a list of dicts")
        if cfgs:
            logger.debug("initialize %s with init_cfg %s", type(self).__name__, cfgs)
            initialize(self, [c for c in cfgs if not _is_pretrained(c)])
        for child in self.children():
            if is_model_wrapper(child) and not hasattr(child, "init_weights"):
                child = child.module
            if hasattr(child, "init_weights") and not getattr(child, "is_init", False):
                child.init_weights()
                update_init_info(
                    child, f"Initialized by user-defined `init_weights` in {type(child).__name__}"
                )
        pretrained = [c for c in cfgs if _is_pretrained(c)]
        if pretrained:  # last, so the loaded weights are what remains
            initialize(self, pretrained)
        self._is_init = True

    # -- which initialiser set each parameter ------------------------------------------
    def _start_init_info(self) -> None:
        table: dict = defaultdict(dict)
        for param in self.parameters():
            table[param]["init_info"] = (
                f"The value is the same before and after calling `init_weights` of "
                f"{type(self).__name__}"
            )
            table[param]["tmp_mean_value"] = param.data.mean().cpu()
        for module in self.modules():
            module._params_init_info = table

    def _finish_init_info(self) -> None:
        table = self._params_init_info
        log = current_logger()  # a ported MMLogger(log_file=...) gets the table, as MMEngine
        for name, param in self.named_parameters():
            log.debug("%s - %s: %s", name, tuple(param.shape), table[param]["init_info"])
        changed = sum(1 for p in self.parameters() if "same before" not in table[p]["init_info"])
        log.info(
            "init_weights of %s: %d of %d parameter tensors initialized",
            type(self).__name__,
            changed,
            len(table),
        )
        for module in self.modules():
            module.__dict__.pop("_params_init_info", None)

    def __repr__(self) -> str:
        text = super().__repr__()
        return f"{text}\ninit_cfg={self.init_cfg}" if self.init_cfg else text


class Sequential(BaseModule, nn.Sequential):
    """``nn.Sequential`` with ``init_cfg``."""

    def __init__(self, *args: nn.Module, init_cfg: dict | list[dict] | None = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.Sequential.__init__(self, *args)


class ModuleList(BaseModule, nn.ModuleList):
    """``nn.ModuleList`` with ``init_cfg``."""

    def __init__(
        self, modules: Iterable[nn.Module] | None = None, init_cfg: dict | list[dict] | None = None
    ) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleList.__init__(self, modules)


class ModuleDict(BaseModule, nn.ModuleDict):
    """``nn.ModuleDict`` with ``init_cfg``."""

    def __init__(
        self, modules: dict[str, Any] | None = None, init_cfg: dict | list[dict] | None = None
    ) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleDict.__init__(self, modules)

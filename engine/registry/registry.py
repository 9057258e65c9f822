"""`Registry`: name -> class tables for ported code that registers its classes.

engine resolves ``dict(type=...)`` at the Runner's edge (`engine.runner.build`): a class
is used as given, engine's own names come from explicit tables there, and any other name
is looked up in the registry MMEngine would use (``MODELS``, ``DATASETS``, ``METRICS``...).
Nothing inside engine registers itself; these tables hold only what ported code registers.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any


class Registry:
    """A table of classes (or functions) by name, with MMEngine's ``register_module``.

    Args:
        name: what it holds, e.g. ``'model'``.
        build_func: how `build` turns a config into an object; `build_from_cfg` if None.
        parent: a registry consulted for names this one lacks.
        scope, locations: accepted for MMEngine's signature (engine has no scopes and
            imports nothing on its own).

    Example:
        >>> MODELS = Registry('model')
        >>> @MODELS.register_module()
        ... class Net(torch.nn.Linear): ...
        >>> MODELS.build(dict(type='Net', in_features=2, out_features=1))
        Net(in_features=2, out_features=1, bias=True)
    """

    def __init__(
        self,
        name: str,
        build_func: Callable | None = None,
        parent: Registry | None = None,
        scope: str | None = None,
        locations: Any = (),
    ) -> None:
        self._name = name
        self._module_dict: dict[str, Any] = {}
        self.build_func = build_func or build_from_cfg
        self.parent = parent
        self.children: dict[str, Registry] = {}  # registries made with this one as parent
        if parent is not None:
            parent.children[name] = self
        self._scope = scope or "engine"
        self._locations = list(locations)

    @property
    def name(self) -> str:
        return self._name

    @property
    def scope(self) -> str:
        return self._scope

    @property
    def module_dict(self) -> dict[str, Any]:
        return self._module_dict

    def __len__(self) -> int:
        return len(self._module_dict)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __repr__(self) -> str:
        return f"Registry(name={self._name!r}, items={sorted(self._module_dict)})"

    def get(self, key: str) -> Any:
        """The class registered as `key` (``'scope.Name'`` ignores the scope), or None."""
        if not isinstance(key, str):
            return None
        name = key.rsplit(".", 1)[-1]
        if name in self._module_dict:
            return self._module_dict[name]
        return self.parent.get(name) if self.parent is not None else None

    def build(self, cfg: dict, *args: Any, **kwargs: Any) -> Any:
        return self.build_func(cfg, *args, **kwargs, registry=self)

    def register_module(
        self, name: str | list[str] | None = None, force: bool = False, module: Any = None
    ) -> Any:
        """Register `module` (or, as a decorator, the class below) under `name` (default:
        its ``__name__``); re-registering a name is an error unless `force`."""
        if not isinstance(force, bool):
            raise TypeError(f"register_module force must be a bool, got {force!r}")
        if name is not None and not isinstance(name, str | list | tuple):
            raise TypeError(f"register_module name must be a str or a list of str, got {name!r}")
        if module is not None:
            self._register(module, name, force)
            return module

        def decorator(cls: Any) -> Any:
            self._register(cls, name, force)
            return cls

        return decorator

    def _register(self, module: Any, name: Any, force: bool) -> None:
        if not (inspect.isclass(module) or inspect.isfunction(module)):
            raise TypeError(f"only classes and functions can be registered, got {module!r}")
        names = [module.__name__] if name is None else [name] if isinstance(name, str) else name
        for key in names:
            if not force and key in self._module_dict and self._module_dict[key] is not module:
                raise KeyError(
                    f"{key!r} is already registered in {self._name!r} as "
                    f"{self._module_dict[key]!r}; pass force=True to replace it"
                )
            self._module_dict[key] = module


def build_from_cfg(cfg: Any, registry: Registry, default_args: dict | None = None) -> Any:
    """``cfg['type']`` (a class, a function, or a name in `registry`) called with the other
    keys, after `default_args` fill what `cfg` leaves out.

    Example:
        >>> build_from_cfg(dict(type=torch.nn.Linear, in_features=2, out_features=1), MODELS)
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"build_from_cfg takes a dict with 'type', got {type(cfg).__name__}")
    args = copy.copy(dict(default_args or {}))
    args.update(cfg)
    if "type" not in args:
        raise KeyError(f"config {cfg!r} has no 'type' (and default_args give none)")
    kind = args.pop("type")
    if isinstance(kind, str):
        found = registry.get(kind)
        if found is None:
            raise KeyError(
                f"{kind!r} is not in the {registry.name} registry; register it with "
                f"@{registry.name.upper()}S.register_module() or pass the class as type"
            )
        kind = found
    if not callable(kind):
        raise TypeError(f"config type must be a class, a function or a name, got {kind!r}")
    try:
        return kind(**args)
    except TypeError as err:
        raise TypeError(f"{getattr(kind, '__name__', kind)}({sorted(args)}): {err}") from None

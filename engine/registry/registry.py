"""`Registry`: name -> class tables for ported code that registers its classes.

engine resolves ``dict(type=...)`` at the Runner's edge (`engine.runner.build`): a class
is used as given, engine's own names come from explicit tables there, and any other name
is looked up in the registry MMEngine would use (``MODELS``, ``DATASETS``, ``METRICS``...).
Nothing inside engine registers itself: a registry's ``module_dict`` holds only what
ported code registered. Where MMEngine's registries know a library's classes from the
start (``OPTIMIZERS`` knows torch.optim's), the package that owns them hands the registry a
lookup with `add_fallback`, consulted after the registered names.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from engine.registry.default_scope import DefaultScope


class Registry:
    """A table of classes (or functions) by name, with MMEngine's ``register_module``.

    Args:
        name: what it holds, e.g. ``'model'``.
        build_func: how `build` turns a config into an object; `build_from_cfg` if None.
        parent: a registry consulted for names this one lacks.
        scope: the key under which a `DefaultScope` of that name finds this registry;
            by default the top-level package of the module that makes it (MMEngine's rule),
            so ``default_scope='mmdet'`` finds the registries a port of mmdet made.
        locations: accepted for MMEngine's signature (engine imports nothing on its own).

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
        self._fallbacks: list[Callable[[str], Any]] = []
        self.build_func = build_func or build_from_cfg
        self.parent = parent
        # Registries made with this one as parent, keyed as MMEngine keys them (by scope)
        # when the scope is given, else by name (an inferred scope is often shared).
        self.children: dict[str, Registry] = {}
        self._scope = scope if scope is not None else self.infer_scope()
        if parent is not None:
            parent.children[scope if scope is not None else name] = self
        self._locations = list(locations)

    @staticmethod
    def infer_scope() -> str:
        """The top-level package of the module that called ``Registry(...)`` (``'engine'``
        when there is none, e.g. in ``__main__``)."""
        frame = inspect.currentframe()
        caller = frame.f_back.f_back if frame and frame.f_back else None
        module = caller.f_globals.get("__name__", "") if caller is not None else ""
        top = module.split(".")[0]
        return "engine" if top in ("", "__main__") else top

    @staticmethod
    def split_scope_key(key: str) -> tuple[str | None, str]:
        """``'mmdet.ResNet'`` -> ``('mmdet', 'ResNet')``; ``'ResNet'`` -> ``(None, 'ResNet')``."""
        scope, dot, name = key.partition(".")
        return (scope, name) if dot else (None, key)

    @property
    def name(self) -> str:
        return self._name

    @property
    def scope(self) -> str:
        return self._scope

    @property
    def module_dict(self) -> dict[str, Any]:
        return self._module_dict

    @property
    def root(self) -> Registry:
        registry = self
        while registry.parent is not None:
            registry = registry.parent
        return registry

    def add_fallback(self, lookup: Mapping[str, Any] | Callable[[str], Any]) -> None:
        """Consult `lookup` (a mapping, or a function of the name returning None when it
        has none) for names nobody registered: a library's classes, known from the start.

        Example:
            >>> OPTIMIZERS.add_fallback(lambda name: getattr(torch.optim, name, None))
        """
        self._fallbacks.append(lookup.get if isinstance(lookup, Mapping) else lookup)

    def __len__(self) -> int:
        return len(self._module_dict)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __repr__(self) -> str:
        return f"Registry(name={self._name!r}, items={sorted(self._module_dict)})"

    def get(self, key: str) -> Any:
        """The class registered as `key`, or None.

        Searched in this registry, its fallbacks, then its parents'; while a `DefaultScope`
        names a registry of this tree, that registry (and its parents) first, as MMEngine's
        ``build`` does. ``'scope.Name'`` searches the registry of that scope; an unknown
        scope (``'mmengine.SGD'``) is ignored.
        """
        if not isinstance(key, str):
            return None
        scope, name = self.split_scope_key(key)
        if scope is not None:
            scoped = self if scope == self._scope else self.root._search_child(scope)
            return (scoped or self)._get_here_or_above(name)
        scoped = self.scoped_registry()
        if scoped is not self:
            found = scoped._get_here_or_above(name)
            if found is not None:
                return found
        return self._get_here_or_above(name)

    def _get_here_or_above(self, name: str) -> Any:
        registry = self
        while registry is not None:
            if name in registry._module_dict:
                return registry._module_dict[name]
            for lookup in registry._fallbacks:
                found = lookup(name)
                if found is not None:
                    return found
            registry = registry.parent
        return None

    def _search_child(self, scope: str) -> Registry | None:
        """The registry of `scope` in the tree below this one (itself included), or None."""
        if self._scope == scope:
            return self
        for child in self.children.values():
            found = child._search_child(scope)
            if found is not None:
                return found
        return None

    def scoped_registry(self) -> Registry:
        """The registry of the current `DefaultScope` in this tree, else this one."""
        current = DefaultScope.get_current_instance()
        if current is None or current.scope_name == self._scope:
            return self
        return self.root._search_child(current.scope_name) or self

    @contextmanager
    def switch_scope_and_registry(self, scope: str | None) -> Iterator[Registry]:
        """MMEngine's: make `scope` current inside the block and yield its registry (this
        one when the tree has none of that scope)."""
        with DefaultScope.overwrite_default_scope(scope):
            yield self.scoped_registry()

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

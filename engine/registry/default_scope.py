"""`DefaultScope`: MMEngine's current-scope record, which picks the registry that names resolve in."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

from engine.utils.manager import ManagerMixin

_overwrites = itertools.count()  # unique instance names for `overwrite_default_scope`


class DefaultScope(ManagerMixin):
    """Records ``scope_name`` (MMEngine's ``default_scope``, e.g. ``'mmdet'``).

    While a scope is current, `Registry.get` looks a name up first in the registry of that
    scope (one ported code made, e.g. ``Registry('model', parent=MODELS, scope='mmdet')``),
    then where it would without a scope.

    Example:
        >>> DefaultScope.get_instance('run', scope_name='mmdet').scope_name
        'mmdet'
    """

    def __init__(self, name: str, scope_name: str) -> None:
        super().__init__(name)
        if not isinstance(scope_name, str):
            raise TypeError(f"DefaultScope scope_name must be a str, got {scope_name!r}")
        self._scope_name = scope_name

    @property
    def scope_name(self) -> str:
        return self._scope_name

    @classmethod
    def get_current_instance(cls) -> DefaultScope | None:
        """The latest scope, or None when there is none (as MMEngine)."""
        return super().get_current_instance() if cls._instance_dict else None

    @classmethod
    @contextmanager
    def overwrite_default_scope(cls, scope_name: str | None) -> Iterator[None]:
        """Make `scope_name` the current scope inside the block (None changes nothing);
        afterwards the scopes are exactly those from before the block.

        Example:
            >>> with DefaultScope.overwrite_default_scope('custom'):
            ...     optimizer = OPTIMIZERS.build(dict(type='CustomOptimizer', params=...))
        """
        if scope_name is None:
            yield
            return
        saved = dict(cls._instance_dict)
        cls.get_instance(f"overwrite-{next(_overwrites)}", scope_name=scope_name)
        try:
            yield
        finally:
            cls._instance_dict.clear()
            cls._instance_dict.update(saved)


def init_default_scope(scope: str) -> None:
    """Make `scope` the current scope (a new instance only when it is not current already)."""
    current = DefaultScope.get_current_instance()
    if current is None or current.scope_name != scope:
        name = f"engine-{scope}"
        if DefaultScope.check_instance_created(name):  # made earlier, no longer the latest
            name = f"engine-{scope}-{next(_overwrites)}"
        DefaultScope.get_instance(name, scope_name=scope)

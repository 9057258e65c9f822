"""`DefaultScope`: MMEngine's current-scope record; engine has one scope, so it is a label."""

from __future__ import annotations

from engine.utils.manager import ManagerMixin


class DefaultScope(ManagerMixin):
    """Records ``scope_name`` (MMEngine's ``default_scope``); lookups do not depend on it.

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


def init_default_scope(scope: str) -> None:
    DefaultScope.get_instance(f"engine-{scope}", scope_name=scope)

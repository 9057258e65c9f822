"""`ManagerMixin`: named global instances (MMEngine's ``get_instance``/``get_current_instance``).

MMEngine keeps one logger, message hub and visualizer per run in such class-level tables;
ported hooks reach them with ``MessageHub.get_current_instance()``. The instance
created last is the current one.
"""

from __future__ import annotations

from typing import Any


class ManagerMixin:
    """Give a class a table of named instances; subclasses take ``name`` first.

    Example:
        >>> class Hub(ManagerMixin):
        ...     def __init__(self, name=''):
        ...         super().__init__(name)
        >>> Hub.get_instance('run1') is Hub.get_current_instance()
        True
    """

    _instance_dict: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._instance_dict = {}  # one table per managed class, as MMEngine

    def __init__(self, name: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{type(self).__name__} needs a non-empty str name, got {name!r}")
        self._instance_name = name

    @classmethod
    def get_instance(cls, name: str, **kwargs: Any) -> Any:
        """The instance called `name`, created with `kwargs` if there is none yet."""
        if name not in cls._instance_dict:
            cls._instance_dict[name] = cls(name=name, **kwargs)
        return cls._instance_dict[name]

    @classmethod
    def get_current_instance(cls) -> Any:
        """The instance created last; an error if there is none."""
        if not cls._instance_dict:
            raise RuntimeError(
                f"no {cls.__name__} instance exists yet; create one with "
                f"{cls.__name__}.get_instance(name)"
            )
        return next(reversed(cls._instance_dict.values()))

    @classmethod
    def check_instance_created(cls, name: str) -> bool:
        return name in cls._instance_dict

    @property
    def instance_name(self) -> str:
        return self._instance_name

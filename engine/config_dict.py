"""`ConfigDict` and `Config`: the smallest part of MMEngine's config that ported code uses.

A dict whose keys read as attributes (``cfg.train_cfg.max_epochs``), nested dicts
included. engine reads Python configs as Python objects (see `engine.config` for the typed
dataclasses); there are no config files, ``_base_`` merging or ``{{ }}`` substitution.
"""

from __future__ import annotations

import copy
from typing import Any


def _wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, ConfigDict):
        return ConfigDict(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, tuple):
        return type(value)(_wrap(v) for v in value)
    return value


class ConfigDict(dict):
    """A dict with attribute access; nested dicts become ConfigDicts.

    Example:
        >>> cfg = ConfigDict(train_cfg=dict(max_epochs=2))
        >>> cfg.train_cfg.max_epochs
        2
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, _wrap(value))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}; it has {sorted(self)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def copy(self) -> ConfigDict:
        return type(self)(dict.copy(self))

    def __copy__(self) -> ConfigDict:
        return self.copy()

    def __deepcopy__(self, memo: dict) -> ConfigDict:
        out = type(self).__new__(type(self))
        memo[id(self)] = out
        for key, value in self.items():
            dict.__setitem__(out, copy.deepcopy(key, memo), copy.deepcopy(value, memo))
        return out

    def __reduce__(self) -> Any:  # pickles as a plain ConfigDict of its items
        return (type(self), (dict(self),))

    def to_dict(self) -> dict:
        """A plain nested dict."""
        return {k: v.to_dict() if isinstance(v, ConfigDict) else v for k, v in self.items()}


class Config(ConfigDict):
    """MMEngine's ``Config(cfg_dict)``: here a `ConfigDict` with ``filename`` recorded.

    Args:
        cfg_dict: the settings.
        filename: where they came from, if anywhere (recorded only).

    Example:
        >>> runner = Runner.from_cfg(Config(dict(model=..., work_dir='work_dirs/a', ...)))
    """

    def __init__(self, cfg_dict: dict | None = None, filename: str | None = None, **_: Any):
        if cfg_dict is not None and not isinstance(cfg_dict, dict):
            raise TypeError(f"Config takes a dict, got {type(cfg_dict).__name__}")
        super().__init__(cfg_dict or {})
        object.__setattr__(self, "_filename", filename)

    @property
    def filename(self) -> str | None:
        return getattr(self, "_filename", None)

    @property
    def pretty_text(self) -> str:
        return repr(self.to_dict())

    @staticmethod
    def fromfile(filename: str, *args: Any, **kwargs: Any) -> Config:
        raise NotImplementedError(
            f"engine reads no config files ({filename!r}): build the dict in Python and pass "
            "Config(cfg_dict), or use engine.config's dataclasses"
        )

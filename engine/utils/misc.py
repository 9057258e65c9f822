"""Type checks and folder helpers with MMEngine's names (``mmengine.utils``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


def is_str(x: Any) -> bool:
    """Whether `x` is a ``str``."""
    return isinstance(x, str)


def is_seq_of(seq: Any, expected_type: type | tuple, seq_type: type | None = None) -> bool:
    """Whether `seq` is a sequence (of `seq_type` when given) whose items are all `expected_type`.

    >>> is_seq_of([1, 2], int), is_seq_of((1, 'a'), int)
    (True, False)
    """
    if not isinstance(seq, seq_type if seq_type is not None else Sequence):
        return False
    return all(isinstance(item, expected_type) for item in seq)


def is_list_of(seq: Any, expected_type: type | tuple) -> bool:
    """`is_seq_of` for lists."""
    return is_seq_of(seq, expected_type, seq_type=list)


def is_tuple_of(seq: Any, expected_type: type | tuple) -> bool:
    """`is_seq_of` for tuples."""
    return is_seq_of(seq, expected_type, seq_type=tuple)


def mkdir_or_exist(dir_name: str | Path, mode: int = 0o777) -> None:
    """Create `dir_name` and its parents unless it exists; ``''`` does nothing."""
    if dir_name == "":
        return
    os.makedirs(os.path.expanduser(str(dir_name)), mode=mode, exist_ok=True)


def scandir(
    dir_path: str | Path,
    suffix: str | tuple[str, ...] | None = None,
    recursive: bool = False,
    case_sensitive: bool = True,
) -> Iterator[str]:
    """Yield the paths of files under `dir_path`, relative to it, optionally by suffix."""
    if suffix is not None and not isinstance(suffix, (str, tuple)):
        raise TypeError(f"suffix must be a str or a tuple of str, got {type(suffix).__name__}")
    if isinstance(suffix, str):
        suffix = (suffix,)
    if suffix is not None and not case_sensitive:
        suffix = tuple(s.lower() for s in suffix)
    root = Path(dir_path)
    pattern = root.rglob("*") if recursive else root.glob("*")
    for path in sorted(pattern):
        if not path.is_file() or path.name.startswith("."):
            continue
        name = path.name if case_sensitive else path.name.lower()
        if suffix is None or name.endswith(suffix):
            yield str(path.relative_to(root))


def is_method_overridden(method: str, base_class: type, derived_class: type | Any) -> bool:
    """Whether `derived_class` (a class or an instance) overrides `base_class`'s `method`."""
    if not isinstance(derived_class, type):
        derived_class = type(derived_class)
    return getattr(derived_class, method) is not getattr(base_class, method)


def has_method(obj: object, method: str) -> bool:
    """Whether `obj` has a callable attribute `method`."""
    return callable(getattr(obj, method, None))

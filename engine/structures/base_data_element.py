"""`BaseDataElement`: a container of data fields and meta information passed as ``data_samples``.

Data fields (tensors, arrays, nested elements) are what tensor-like methods (`to`, `cpu`,
`detach`, `numpy`...) act on; metainfo fields (image id, shape, file name) describe the
sample and are copied as they are. An attribute set on the element is a data field;
metainfo is set with `set_metainfo` or ``metainfo=`` at construction.

Misuse raises errors that are also `AssertionError`s, as MMEngine's checks are, so ported
code catching either keeps working.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["BaseDataElement", "FieldTypeError", "FieldValueError"]

_PRIVATE = ("_metainfo_fields", "_data_fields")


class FieldTypeError(TypeError, AssertionError):
    """A value of the wrong type for a field (an `AssertionError` too, as in MMEngine)."""


class FieldValueError(ValueError, AssertionError):
    """A value that does not fit the container (an `AssertionError` too, as in MMEngine)."""


def _indent(text: str, spaces: int) -> str:
    """Indent every line of `text` but the first."""
    first, *rest = text.split("\n")
    return "\n".join([first, *(" " * spaces + line for line in rest)])


class BaseDataElement:
    """Data fields and metainfo of one sample (or one set of instances).

    Args:
        metainfo: meta information (copied deeply), or None.
        **kwargs: data fields.

    Example:
        >>> sample = BaseDataElement(metainfo=dict(img_id=3), gt_label=torch.tensor([1]))
        >>> sample.img_id, sample.keys(), sample.metainfo_keys()
        (3, ['gt_label'], ['img_id'])
        >>> sample.to("cpu").gt_label
        tensor([1])
    """

    def __init__(self, *, metainfo: dict | None = None, **kwargs: Any) -> None:
        object.__setattr__(self, "_metainfo_fields", set())
        object.__setattr__(self, "_data_fields", set())
        if metainfo is not None:
            self.set_metainfo(metainfo)
        if kwargs:
            self.set_data(kwargs)

    # -- setting fields ----------------------------------------------------------------
    def set_metainfo(self, metainfo: dict) -> None:
        """Add or replace metainfo fields (deep-copied)."""
        if not isinstance(metainfo, dict):
            raise FieldTypeError(f"metainfo must be a dict, got {type(metainfo).__name__}")
        for name, value in copy.deepcopy(metainfo).items():
            self.set_field(value, name, field_type="metainfo")

    def set_data(self, data: dict) -> None:
        """Add or replace data fields (through ``setattr``, so subclasses' checks apply)."""
        if not isinstance(data, dict):
            raise FieldTypeError(f"data must be a dict, got {type(data).__name__}")
        for name, value in data.items():
            setattr(self, name, value)

    def update(self, instance: BaseDataElement) -> None:
        """Take every metainfo and data field of `instance`."""
        if not isinstance(instance, BaseDataElement):
            raise FieldTypeError(f"update takes a BaseDataElement, got {type(instance).__name__}")
        self.set_metainfo(dict(instance.metainfo_items()))
        self.set_data(dict(instance.items()))

    def set_field(
        self,
        value: Any,
        name: str,
        dtype: type | tuple[type, ...] | None = None,
        field_type: str = "data",
    ) -> None:
        """Set field `name` of kind ``'data'`` or ``'metainfo'``, checking ``isinstance(value,
        dtype)`` when `dtype` is given. A name is data or metainfo, never both."""
        if field_type not in ("metainfo", "data"):
            raise FieldValueError(f"field_type must be 'metainfo' or 'data', got {field_type!r}")
        if dtype is not None and not isinstance(value, dtype):
            raise FieldTypeError(f"field {name!r} must be a {dtype}, got {type(value).__name__}")
        mine, other = (
            (self._metainfo_fields, self._data_fields)
            if field_type == "metainfo"
            else (self._data_fields, self._metainfo_fields)
        )
        if name in other:
            kind = "data" if field_type == "metainfo" else "metainfo"
            raise AttributeError(
                f"cannot set {name!r} as a {field_type} field: it is already a {kind} field"
            )
        mine.add(name)
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PRIVATE:
            raise AttributeError(f"{name} is private to {type(self).__name__} and immutable")
        self.set_field(value, name, field_type="data")

    def __delattr__(self, name: str) -> None:
        if name in _PRIVATE:
            raise AttributeError(f"{name} is private to {type(self).__name__} and immutable")
        object.__delattr__(self, name)
        self._metainfo_fields.discard(name)
        self._data_fields.discard(name)

    __setitem__ = __setattr__
    __delitem__ = __delattr__

    def get(self, key: str, default: Any = None) -> Any:
        """The field `key` (data or metainfo, properties included), or `default`."""
        return getattr(self, key, default)

    def pop(self, *args: Any) -> Any:
        """``pop(name[, default])``: remove field `name` and return it, like ``dict.pop``."""
        if not 1 <= len(args) <= 2:
            raise TypeError(f"pop takes a name and an optional default, got {len(args)} arguments")
        name = args[0]
        for fields in (self._metainfo_fields, self._data_fields):
            if name in fields:
                fields.remove(name)
                return self.__dict__.pop(name)
        if len(args) == 2:
            return args[1]
        raise KeyError(f"{name!r} is neither a metainfo nor a data field")

    def __contains__(self, name: str) -> bool:
        return name in self._data_fields or name in self._metainfo_fields

    # -- copies ------------------------------------------------------------------------
    def new(self, *, metainfo: dict | None = None, **kwargs: Any) -> BaseDataElement:
        """A new element of the same class: the given metainfo/data, else copies of this one's
        (metainfo deep-copied, data fields shared)."""
        out = type(self)()
        out.set_metainfo(dict(self.metainfo_items()) if metainfo is None else metainfo)
        out.set_data(kwargs if kwargs else dict(self.items()))
        return out

    def clone(self) -> BaseDataElement:
        """A shallow copy: same field values, its own field sets."""
        out = type(self)()
        out.set_metainfo(dict(self.metainfo_items()))
        out.set_data(dict(self.items()))
        return out

    # -- views -------------------------------------------------------------------------
    def keys(self) -> list[str]:
        """Data field names. A subclass property ``x`` stored as ``_x`` is listed as ``x``."""
        # A property ``x`` whose setter stores ``_x`` leaves both names in the data fields.
        hidden = {
            "_" + name
            for name in self._data_fields
            if isinstance(getattr(type(self), name, None), property)
        }
        return [name for name in self._data_fields if name not in hidden]

    def metainfo_keys(self) -> list[str]:
        return list(self._metainfo_fields)

    def values(self) -> list[Any]:
        return [getattr(self, k) for k in self.keys()]

    def metainfo_values(self) -> list[Any]:
        return [getattr(self, k) for k in self.metainfo_keys()]

    def all_keys(self) -> list[str]:
        return self.metainfo_keys() + self.keys()

    def all_values(self) -> list[Any]:
        return self.metainfo_values() + self.values()

    def items(self) -> Iterator[tuple[str, Any]]:
        for k in self.keys():
            yield k, getattr(self, k)

    def metainfo_items(self) -> Iterator[tuple[str, Any]]:
        for k in self.metainfo_keys():
            yield k, getattr(self, k)

    def all_items(self) -> Iterator[tuple[str, Any]]:
        for k in self.all_keys():
            yield k, getattr(self, k)

    @property
    def metainfo(self) -> dict:
        """The metainfo fields as a dict."""
        return dict(self.metainfo_items())

    def to_dict(self) -> dict:
        """Metainfo and data fields in one dict; nested elements become dicts too."""
        return {
            k: v.to_dict() if isinstance(v, BaseDataElement) else v for k, v in self.all_items()
        }

    # -- tensor-like methods: each returns a new element ---------------------------------
    def _map(self, fn: Any, kinds: tuple[type, ...]) -> BaseDataElement:
        out = self.new()
        for name, value in self.items():
            if isinstance(value, kinds):
                setattr(out, name, fn(value))
        return out

    def to(self, *args: Any, **kwargs: Any) -> BaseDataElement:
        """Call ``.to(*args, **kwargs)`` on every data field that has it (tensors, elements)."""
        out = self.new()
        for name, value in self.items():
            if hasattr(value, "to") and not isinstance(value, type):
                setattr(out, name, value.to(*args, **kwargs))
        return out

    def cpu(self) -> BaseDataElement:
        return self._map(lambda v: v.cpu(), (torch.Tensor, BaseDataElement))

    def cuda(self) -> BaseDataElement:
        return self._map(lambda v: v.cuda(), (torch.Tensor, BaseDataElement))

    def detach(self) -> BaseDataElement:
        return self._map(lambda v: v.detach(), (torch.Tensor, BaseDataElement))

    def numpy(self) -> BaseDataElement:
        """Tensors become NumPy arrays (detached, on the CPU)."""
        return self._map(
            lambda v: v.numpy() if isinstance(v, BaseDataElement) else v.detach().cpu().numpy(),
            (torch.Tensor, BaseDataElement),
        )

    def to_tensor(self) -> BaseDataElement:
        """NumPy arrays become tensors."""
        return self._map(
            lambda v: v.to_tensor() if isinstance(v, BaseDataElement) else torch.from_numpy(v),
            (np.ndarray, BaseDataElement),
        )

    # -- representation ----------------------------------------------------------------
    def __repr__(self) -> str:
        return _dump(self)


def _dump(obj: Any) -> str:
    if isinstance(obj, dict):
        return "".join(f"\n{k}: {_indent(_dump(v), 4)}" for k, v in obj.items())
    if isinstance(obj, BaseDataElement):
        body = "\n\n    META INFORMATION" + _indent(_dump(dict(obj.metainfo_items())), 4)
        body += "\n\n    DATA FIELDS" + _indent(_dump(dict(obj.items())), 4)
        return f"<{type(obj).__name__}({body}\n) at {hex(id(obj))}>"
    return repr(obj)

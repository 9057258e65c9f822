"""`InstanceData`: per-instance fields (boxes, labels, masks) that all have the same length.

Indexing selects instances in every field at once: an int, a slice, a list of indices or
booleans, a LongTensor/BoolTensor or a NumPy array; `InstanceData.cat` joins element lists.
"""

from __future__ import annotations

import itertools
from collections.abc import Sized
from typing import Any

import numpy as np
import torch

from engine.structures.base_data_element import (
    _PRIVATE,
    BaseDataElement,
    FieldTypeError,
    FieldValueError,
)

__all__ = ["InstanceData"]

_INDEX_TYPES = (str, slice, int, list, torch.Tensor, np.ndarray)


def _join(values: list) -> Any:
    """Concatenate same-kind field values along the instance dimension."""
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(values, dim=0)
    if isinstance(first, np.ndarray):
        return np.concatenate(values, axis=0)
    if isinstance(first, (str, list, tuple)):
        out = first[:]
        for v in values[1:]:
            out = out + v
        return out
    return type(first).cat(values)


class InstanceData(BaseDataElement):
    """Data fields that each hold one entry per instance; every field has the same length.

    Example:
        >>> inst = InstanceData(bboxes=torch.zeros(3, 4), labels=torch.tensor([0, 2, 1]))
        >>> len(inst[inst.labels > 0])
        2
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PRIVATE:
            raise AttributeError(f"{name} is private to {type(self).__name__} and immutable")
        if not isinstance(value, Sized):
            raise FieldTypeError(
                f"InstanceData field {name!r} must have a length (__len__), "
                f"got {type(value).__name__}"
            )
        if len(self) > 0 and len(value) != len(self):
            raise FieldValueError(
                f"InstanceData field {name!r} has length {len(value)}, "
                f"the other fields have {len(self)}"
            )
        super().__setattr__(name, value)

    __setitem__ = __setattr__

    def __len__(self) -> int:
        return len(self.values()[0]) if self._data_fields else 0

    def __getitem__(self, item: Any) -> Any:
        """A new `InstanceData` with the selected instances (a str gives that field)."""
        if isinstance(item, str):
            return getattr(self, item)
        if not isinstance(item, _INDEX_TYPES):
            raise FieldTypeError(
                "InstanceData index must be a str, int, slice, list, LongTensor, BoolTensor or "
                f"NumPy array, got {type(item).__name__}"
            )
        if isinstance(item, list):
            item = np.array(item)
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(item.astype(np.int64) if item.dtype == np.int32 else item)
        if isinstance(item, int):
            if not -len(self) <= item < len(self):
                raise IndexError(f"index {item} is out of range for {len(self)} instances")
            item = slice(item, None, len(self))  # one instance, the dimension kept
        out = type(self)(metainfo=self.metainfo)
        if not isinstance(item, torch.Tensor):
            for name, value in self.items():
                out[name] = value[item]
            return out
        if item.dim() != 1:
            raise FieldValueError("a tensor index must be 1-D: it selects along the instances")
        if item.dtype == torch.bool:
            if len(item) != len(self):
                raise FieldValueError(
                    f"a boolean index of length {len(item)} does not match {len(self)} instances"
                )
        elif item.dtype not in (torch.int64, torch.int32, torch.uint8, torch.int16, torch.int8):
            raise FieldTypeError(
                f"a tensor index must be integer or boolean, got {item.dtype} values"
            )
        for name, value in self.items():
            out[name] = self._select(name, value, item)
        return out

    @staticmethod
    def _select(name: str, value: Any, index: torch.Tensor) -> Any:
        if isinstance(value, torch.Tensor):
            return value[index.to(value.device)]
        if isinstance(value, np.ndarray):
            return value[index.cpu().numpy()]
        if isinstance(value, (str, list, tuple)) or (
            hasattr(value, "__getitem__") and hasattr(value, "cat")
        ):
            rows = (index.nonzero().view(-1) if index.dtype == torch.bool else index).tolist()
            if not rows:
                return value[slice(None, 0)]
            parts = [value[slice(i, None, len(value))] for i in rows]
            return _join(parts)
        raise ValueError(
            f"The type of `{name}` is `{type(value)}`, which has no attribute of `cat`, "
            "so it does not support slice with `bool`"
        )

    @staticmethod
    def cat(instances_list: list[InstanceData]) -> InstanceData:
        """Join a non-empty list of `InstanceData` with the same keys, in order."""
        if not instances_list:
            raise FieldValueError("InstanceData.cat needs at least one InstanceData")
        if not all(isinstance(x, InstanceData) for x in instances_list):
            kinds = sorted({type(x).__name__ for x in instances_list})
            raise FieldTypeError(f"InstanceData.cat takes InstanceData only, got {kinds}")
        if len(instances_list) == 1:
            return instances_list[0]
        key_sets = [set(x.all_keys()) for x in instances_list]
        if any(keys != key_sets[0] for keys in key_sets):
            extra = sorted(set(itertools.chain(*key_sets)) - set.intersection(*key_sets))
            raise FieldValueError(f"InstanceData.cat: the elements' keys differ ({extra})")
        first = instances_list[0]
        out = type(first)(metainfo=first.metainfo)
        for name in first.keys():
            values = [x[name] for x in instances_list]
            head = values[0]
            if not isinstance(head, (torch.Tensor, np.ndarray, str, list, tuple)) and not hasattr(
                head, "cat"
            ):
                raise ValueError(
                    f"The type of `{name}` is `{type(head)}` which has no attribute of `cat`"
                )
            out[name] = _join(values)
        return out

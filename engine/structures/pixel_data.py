"""`PixelData`: per-pixel fields (segmentation maps, heatmaps) sharing one height and width.

Every field is a tensor or array of shape ``(C, H, W)``; a 2-D ``(H, W)`` value is stored as
``(1, H, W)``. Indexing with ``[rows, cols]`` (ints or slices) crops every field at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from engine.structures.base_data_element import (
    _PRIVATE,
    BaseDataElement,
    FieldTypeError,
    FieldValueError,
)

__all__ = ["PixelData"]


class PixelData(BaseDataElement):
    """Pixel-level data fields of one image, all with the same ``(H, W)``.

    Example:
        >>> seg = PixelData(sem_seg=torch.zeros(1, 4, 6))
        >>> seg[1:3, 2:5].shape
        (2, 3)
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PRIVATE:
            raise AttributeError(f"{name} is private to {type(self).__name__} and immutable")
        if not isinstance(value, (torch.Tensor, np.ndarray)):
            raise FieldTypeError(
                f"PixelData field {name!r} must be a tensor or a NumPy array, "
                f"got {type(value).__name__}"
            )
        if value.ndim not in (2, 3):
            raise FieldValueError(
                f"PixelData field {name!r} must be (C, H, W) or (H, W), got {value.ndim} dims"
            )
        if self.shape and tuple(value.shape[-2:]) != self.shape:
            raise FieldValueError(
                f"PixelData field {name!r} is {tuple(value.shape[-2:])} (H, W); "
                f"the other fields are {self.shape}"
            )
        super().__setattr__(name, value[None] if value.ndim == 2 else value)

    __setitem__ = __setattr__

    def __getitem__(self, item: tuple) -> PixelData:
        """Crop every field to ``[rows, cols]``; an int keeps its dimension."""
        if not isinstance(item, tuple):
            raise TypeError(f"Unsupported type {type(item)} for slicing PixelData")
        if len(item) != 2:
            raise FieldValueError(f"PixelData takes [rows, cols], got {len(item)} indices")
        crop: list[slice] = [slice(None)]
        for size, index in zip(self.shape, item):
            if isinstance(index, int):
                crop.append(slice(index, None, size))
            elif isinstance(index, slice):
                crop.append(index)
            else:
                raise TypeError(
                    f"The type of element in input must be int or slice, but got {type(index)}"
                )
        out = type(self)(metainfo=self.metainfo)
        for name, value in self.items():
            setattr(out, name, value[tuple(crop)])
        return out

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(H, W)`` of the fields, or None when there are none."""
        if not self._data_fields:
            return None
        return tuple(self.values()[0].shape[-2:])

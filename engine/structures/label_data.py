"""`LabelData`: label fields of a sample (class indices, one-hot vectors, scores)."""

from __future__ import annotations

import torch

from engine.structures.base_data_element import BaseDataElement, FieldTypeError, FieldValueError

__all__ = ["LabelData"]


class LabelData(BaseDataElement):
    """Label fields, with conversions between class indices and one-hot vectors.

    Example:
        >>> LabelData.label_to_onehot(torch.tensor([1, 3]), num_classes=4)
        tensor([0, 1, 0, 1])
    """

    @staticmethod
    def onehot_to_label(onehot: torch.Tensor) -> torch.Tensor:
        """The indices of the ones in a 1-D 0/1 vector, on its device."""
        if not isinstance(onehot, torch.Tensor):
            raise FieldTypeError(f"onehot must be a tensor, got {type(onehot).__name__}")
        if onehot.ndim == 1 and (onehot.numel() == 0 or (onehot.min() >= 0 and onehot.max() <= 1)):
            return onehot.nonzero().squeeze(-1)
        raise ValueError("input is not one-hot and can not convert to label")

    @staticmethod
    def label_to_onehot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
        """A ``(num_classes,)`` vector of `label`'s dtype and device, one at each index."""
        if not isinstance(label, torch.Tensor):
            raise FieldTypeError(f"label must be a tensor, got {type(label).__name__}")
        if label.numel() and int(label.max()) >= num_classes:
            raise FieldValueError(
                f"label {int(label.max())} is out of range for num_classes={num_classes}"
            )
        onehot = label.new_zeros((num_classes,))
        onehot[label] = 1
        return onehot

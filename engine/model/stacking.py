"""Combine per-sample pieces into batches: `stack_batch` (pad, then stack) and `merge_dict`."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F

__all__ = ["merge_dict", "stack_batch"]


def stack_batch(
    tensor_list: list[torch.Tensor], pad_size_divisor: int = 1, pad_value: float = 0
) -> torch.Tensor:
    """Stack tensors of one rank into a batch, padding every dim but the first (channels)
    at its end to the largest size, rounded up to a multiple of `pad_size_divisor`.

    Example:
        >>> stack_batch([torch.ones(3, 4, 5), torch.ones(3, 6, 2)], pad_size_divisor=4).shape
        torch.Size([2, 3, 8, 8])
    """
    if not isinstance(tensor_list, list) or not tensor_list:
        raise ValueError("stack_batch takes a non-empty list of tensors")
    ranks = {t.ndim for t in tensor_list}
    if len(ranks) != 1:
        raise ValueError(f"stack_batch: the tensors have different ranks {sorted(ranks)}")
    d = pad_size_divisor
    target = [
        math.ceil(max(t.shape[i] for t in tensor_list) / d) * d for i in range(tensor_list[0].ndim)
    ]
    padded = []
    for t in tensor_list:
        # F.pad lists (before, after) pairs from the last dim backwards; pad only "after".
        pad: list[int] = []
        for i in range(t.ndim - 1, 0, -1):
            pad += [0, target[i] - t.shape[i]]
        padded.append(F.pad(t, pad, value=pad_value) if any(pad) else t)
    return torch.stack(padded)


@torch.fx.wrap
def merge_dict(*args: dict) -> dict:
    """One dict from several (later keys win); torch.fx traces it as one call, which
    ``dict.update`` inside a traced model cannot be."""
    out: dict[Any, Any] = {}
    for item in args:
        if not isinstance(item, dict):
            raise TypeError(f"merge_dict takes dicts, got {type(item).__name__}")
        out.update(item)
    return out

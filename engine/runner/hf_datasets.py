"""Hugging Face ``datasets`` where engine expects a loader: used correctly, or refused with the fix.

A ``datasets.Dataset`` iterates as dicts of Python lists; a DataLoader over it without the
torch format collates them into lists of tensors, one per pixel or feature: a model then
fails far from the cause. So a Dataset given as ``dataset=`` in a loader dict is put in
torch format (the Runner's DataLoader batches it, Accelerate shards it); one given where
a loader belongs is refused with the line that fixes it.

Example:
    >>> Runner(..., train_dataloader=dict(dataset=ds, batch_size=32, shuffle=True))   # fine
    >>> Runner(..., train_dataloader=ds)        # TypeError: pass dict(dataset=ds, ...)
"""

from __future__ import annotations

import sys
from typing import Any


def _datasets() -> Any:
    """The datasets module if some code imported it (else nothing can be one of its objects)."""
    return sys.modules.get("datasets")


def is_hf_dataset(obj: Any) -> bool:
    """A ``datasets`` Dataset, IterableDataset or DatasetDict."""
    ds = _datasets()
    kinds = ("Dataset", "IterableDataset", "DatasetDict", "IterableDatasetDict")
    return ds is not None and isinstance(obj, tuple(getattr(ds, k) for k in kinds))


def refuse_as_loader(obj: Any, name: str) -> None:
    """Raise a one-line TypeError with the fix when `obj`, given as a loader, is a dataset."""
    if not is_hf_dataset(obj):
        return
    ds = _datasets()
    if isinstance(obj, (ds.DatasetDict, ds.IterableDatasetDict)):
        raise TypeError(
            f"{name} is a datasets.DatasetDict; pick a split: {name}=dict(dataset=ds['train'], batch_size=32)"
        )
    raise TypeError(
        f"{name} is a datasets.{type(obj).__name__}, not a loader; pass "
        f"{name}=dict(dataset=ds, batch_size=32, shuffle=True) (engine batches it in torch format)"
    )


def torch_formatted(dataset: Any) -> Any:
    """`dataset` in torch format when it is a ``datasets`` dataset without a format; else as is."""
    ds = _datasets()
    if ds is None:
        return dataset
    if isinstance(dataset, ds.Dataset) and dataset.format.get("type") is None:
        return dataset.with_format("torch")
    if isinstance(dataset, ds.IterableDataset) and getattr(dataset, "_formatting", None) is None:
        return dataset.with_format("torch")
    return dataset

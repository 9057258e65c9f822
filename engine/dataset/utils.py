"""MMEngine's collate functions (`pseudo_collate`, `default_collate`) and `worker_init_fn`."""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data._utils.collate import default_collate as torch_default_collate


def _is_data_element(item: Any) -> bool:
    """A data sample (``BaseDataElement`` and the like): movable with ``.to()`` but with no
    meaning as a stacked tensor, so a batch keeps a list of them."""
    return not isinstance(item, torch.Tensor) and callable(getattr(item, "to", None))


def _collate(data_batch: Sequence, leaf: Any) -> Any:
    """Transpose a list of samples into one batch of the samples' structure; `leaf` turns
    the list of one field's values into the batch's value."""
    if not isinstance(data_batch, Sequence) or not data_batch:
        raise ValueError(
            f"collate needs a non-empty list of samples, got {type(data_batch).__name__}"
        )
    item = data_batch[0]
    if isinstance(item, (str, bytes)):
        return list(data_batch)
    if isinstance(item, tuple) and hasattr(item, "_fields"):  # a named tuple keeps its type
        return type(item)(*(_collate(list(s), leaf) for s in zip(*data_batch)))
    if isinstance(item, Sequence):
        size = len(item)
        if any(len(sample) != size for sample in data_batch):
            raise RuntimeError("each sample in the batch should have the same length")
        fields = [_collate(list(s), leaf) for s in zip(*data_batch)]
        if isinstance(item, tuple):
            return fields  # a list, as torch's default_collate returns for tuples
        try:
            return type(item)(fields)
        except TypeError:  # a sequence type that cannot be built from a list (range)
            return fields
    if isinstance(item, Mapping):
        return type(item)({key: _collate([d[key] for d in data_batch], leaf) for key in item})
    if _is_data_element(item):  # after Mapping: a dict-like batch (BatchEncoding) is collated
        return list(data_batch)
    return leaf(data_batch)


def pseudo_collate(data_batch: Sequence) -> Any:
    """Batch samples without stacking: each field becomes a list of the samples' values.

    Dicts, lists and tuples are transposed (a tuple becomes a list); tensors, arrays,
    numbers and data samples stay as they are, in a list. MMEngine's default for dataloader
    dicts; stacking is then the data preprocessor's job (``ImgDataPreprocessor`` pads).

    Args:
        data_batch: The samples, as the dataset returned them.

    Returns:
        One batch with the structure of a sample.

    Example:
        >>> pseudo_collate([dict(img=torch.zeros(3, 4, 4), label=0),
        ...                 dict(img=torch.zeros(3, 5, 5), label=1)])['label']
        [0, 1]
    """
    return _collate(data_batch, list)


def default_collate(data_batch: Sequence) -> Any:
    """Batch samples, stacking tensors, arrays and numbers into tensors (torch's rule),
    but keeping data samples (objects with ``.to()`` such as ``BaseDataElement``) and
    strings as lists.

    Args:
        data_batch: The samples; tensors of one field must have the same shape.

    Returns:
        One batch with the structure of a sample, tensors with the batch dimension first.

    Example:
        >>> default_collate([(torch.ones(2), 0), (torch.zeros(2), 1)])[1]
        tensor([0, 1])
    """
    return _collate(data_batch, torch_default_collate)


def worker_init_fn(
    worker_id: int,
    num_workers: int,
    rank: int,
    seed: int,
    disable_subprocess_warning: bool = False,
) -> None:
    """Seed a DataLoader worker with ``num_workers * rank + worker_id + seed`` (MMEngine's
    rule): `random`, NumPy and torch, so random augmentation repeats run to run.

    Args:
        worker_id: The worker's index in ``[0, num_workers)``.
        num_workers: The loader's number of workers.
        rank: This process's rank (0 without distribution).
        seed: The run's seed.
        disable_subprocess_warning: Silence warnings in every worker but the first.

    Note:
        The seed is the same every epoch, so is each worker's augmentation; engine's default
        (`engine.runner.accelerate_setup.seed_worker`) draws a new one each epoch.
    """
    worker_seed = num_workers * rank + worker_id + seed
    random.seed(worker_seed)
    torch.manual_seed(worker_seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional; random and torch are seeded
        np = None
    if np is not None:
        np.random.seed(worker_seed % 2**32)
    if disable_subprocess_warning and worker_id != 0:
        warnings.simplefilter("ignore")

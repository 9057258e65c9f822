"""Collection of per-sample results across processes, in dataset order."""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import torch.distributed as dist
from accelerate.utils import send_to_device


def _recording_batches(process):
    @functools.wraps(process)
    def wrapper(self, *args, **kwargs):
        if self.__dict__.get("_in_process"):  # super().process() of a subclass: same batch
            return process(self, *args, **kwargs)
        self._in_process = True
        try:
            return process(self, *args, **kwargs)
        finally:
            self._in_process = False
            self._batch_ends.append(len(self.results))

    return wrapper


def collect_results(results: list, batch_ends: Sequence[int], size: int | None) -> list:
    """Gather per-batch results from every process in dataset order; truncate to ``size``.

    Args:
        results: This process's results, all batches concatenated.
        batch_ends: ``len(results)`` after each batch.
        size: Number of real samples, or ``None`` to keep everything.

    Returns:
        The results of the whole dataset on every process, tensors on the CPU.
    """
    # Assumes Accelerate's sharding of a map-style dataset (BatchSamplerShard): with W
    # processes, process r gets batches r, r + W, r + 2W, ... and (even_batches=True) pads
    # the end by wrapping round to the dataset's start. Interleaving batches by index
    # (rank 0 batch 0, rank 1 batch 0, rank 0 batch 1, ...) restores dataset order, so
    # the padding lands after sample size - 1 and truncation drops exactly it. The order
    # also holds for split_batches=True and IterableDatasetShard (process r holds slice r
    # of each global batch), not for torch's DistributedSampler, which deals out samples.
    bounds = [0, *(e for e in batch_ends if e <= len(results))]
    if bounds[-1] != len(results):  # results appended outside process(): one more batch
        bounds.append(len(results))
    chunks = [send_to_device(results[a:b], "cpu") for a, b in zip(bounds, bounds[1:])]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        per_rank: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(per_rank, chunks)
        # zip_longest: with even_batches=False the last processes may have one batch fewer.
        chunks = [c for batch in itertools.zip_longest(*per_rank) for c in batch if c is not None]
    flat = [r for chunk in chunks for r in chunk]
    # A metric that appends one result per batch (MMEngine's tutorial does) has fewer
    # results than samples by design; fewer per-sample results mean some were lost.
    per_batch = len(chunks) > 1 and all(len(c) == 1 for c in chunks)
    if size is not None and len(flat) < size and not per_batch:
        warnings.warn(
            f"collected {len(flat)} results for a dataset of {size} samples", stacklevel=3
        )
    return flat if size is None else flat[:size]

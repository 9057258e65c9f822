"""MMEngine's samplers: `DefaultSampler` (sharded, seeded shuffling) and `InfiniteSampler`.

Used as they are in a hand-written loop, each process reads its own shard, as in MMEngine.
Given to the `Runner` (as ``sampler=dict(type='DefaultSampler', ...)`` or built), they are
translated into Accelerate's seedable sampler (`engine.runner.build.build_dataloader`): one
permutation per ``(seed, epoch)``, sharded by Accelerate, and skipped exactly on resume.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sized

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def get_dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sync_random_seed() -> int:
    """A random seed drawn on rank 0 and shared with every process (one shuffle for all)."""
    seed = random.SystemRandom().randrange(2**31)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return seed
    box = [seed]
    dist.broadcast_object_list(box, src=0)
    return int(box[0])


def _check_dataset(dataset: object, name: str) -> None:
    if not isinstance(dataset, Sized):
        raise TypeError(f"{name} needs a dataset with len(), got {type(dataset).__name__}")


class DefaultSampler(Sampler[int]):
    """Indices of one process's shard of `dataset`, shuffled per epoch (as MMEngine's).

    With ``shuffle`` the order is ``torch.randperm`` from a generator seeded with
    ``seed + epoch`` (call `set_epoch` each epoch), the same permutation on every process;
    process ``r`` of ``W`` then takes positions ``r, r + W, ...``.

    Args:
        dataset: A sized dataset.
        shuffle: Shuffle each epoch (else dataset order).
        seed: Shuffling seed, equal on every process; ``None`` draws one on rank 0.
        round_up: Repeat the first indices so that every process gets the same number of
            samples (``ceil(len / W)``); ``False`` gives the last processes one fewer.

    Example:
        >>> sampler = DefaultSampler(range(10), shuffle=True, seed=0)
        >>> sampler.set_epoch(1)
        >>> sorted(sampler) == list(range(10))
        True
    """

    def __init__(
        self, dataset: Sized, shuffle: bool = True, seed: int | None = None, round_up: bool = True
    ) -> None:
        _check_dataset(dataset, "DefaultSampler")
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        self.round_up = round_up
        if round_up:
            self.num_samples = math.ceil(len(dataset) / self.world_size)
            self.total_size = self.num_samples * self.world_size
        else:
            self.num_samples = math.ceil((len(dataset) - self.rank) / self.world_size)
            self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            indices = torch.randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        if self.round_up and n:
            indices = (indices * (self.total_size // n + 1))[: self.total_size]
        return iter(indices[self.rank : self.total_size : self.world_size])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle for `epoch` (a new order each epoch, repeatable)."""
        self.epoch = epoch


class InfiniteSampler(Sampler[int]):
    """An endless stream of this process's indices, for iteration-based loops (as MMEngine's).

    One generator seeded once with `seed` draws a new permutation after each pass; process
    ``r`` of ``W`` takes positions ``r, r + W, ...`` of the endless stream. ``len()`` is the
    dataset's length. In the `Runner` it becomes a seeded shuffle that the iteration loop
    cycles, reseeding with ``seed + pass`` (a different, equally random stream that resumes
    exactly).

    Args:
        dataset: A sized dataset.
        shuffle: Shuffle each pass (else dataset order, repeated).
        seed: Shuffling seed, equal on every process; ``None`` draws one on rank 0.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: int | None = None) -> None:
        _check_dataset(dataset, "InfiniteSampler")
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.size = len(dataset)
        self.indices = self._indices_of_rank()

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed)
        while self.size:
            if self.shuffle:
                yield from torch.randperm(self.size, generator=g).tolist()
            else:
                yield from range(self.size)

    def _indices_of_rank(self) -> Iterator[int]:
        return itertools.islice(self._infinite_indices(), self.rank, None, self.world_size)

    def __iter__(self) -> Iterator[int]:
        yield from self.indices

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Does nothing: the stream never ends, so there are no epochs to reseed."""

"""Where a run is in its data: what a checkpoint records about the training loader."""

from __future__ import annotations

from typing import Any


def loader_length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def seedable_sampler(loader: Any) -> Any:
    from accelerate.data_loader import SeedableRandomSampler

    get = getattr(loader, "get_sampler", None)
    sampler = get() if callable(get) else getattr(loader, "sampler", None)
    return sampler if isinstance(sampler, SeedableRandomSampler) else None


def data_seed(loader: Any) -> int | None:
    sampler = seedable_sampler(loader) if loader is not None else None
    return None if sampler is None else int(sampler.initial_seed)

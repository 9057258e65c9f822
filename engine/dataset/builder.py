"""Build a `DataLoader` from MMEngine's dataloader dict, for Accelerate to shard.

MMEngine's samplers shard by rank themselves; here Accelerate shards, seeds and skips on
resume, so `DefaultSampler`/`InfiniteSampler` (dicts or built) become the loader's seeded
shuffle (``shuffle=...``; the seed, when one is given, is kept on the loader as
``engine_sampler_seed`` for the Runner to hand to Accelerate's seedable sampler). Accelerate
deals out whole batches and pads the last round as ``round_up=True`` does (the evaluator
drops the padding); ``round_up=False`` is accepted and changes nothing. An
``InfiniteSampler``'s endless stream becomes passes that the iteration loop cycles, each
reshuffled with ``seed + pass``.

Example:
    >>> loader = build_dataloader(dict(dataset=ds, batch_size=4,
    ...     sampler=dict(type='DefaultSampler', shuffle=True),
    ...     collate_fn=dict(type='pseudo_collate')), 'train_dataloader')
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from accelerate.data_loader import SeedableRandomSampler
from torch.utils.data import DataLoader, Subset

from engine.dataset.sampler import DefaultSampler, InfiniteSampler, get_dist_info
from engine.dataset.utils import default_collate, pseudo_collate, worker_init_fn

logger = logging.getLogger("engine")

_SAMPLERS = {"DefaultSampler": DefaultSampler, "InfiniteSampler": InfiniteSampler}
_FUNCTIONS = {
    "pseudo_collate": pseudo_collate,
    "default_collate": default_collate,
    "worker_init_fn": worker_init_fn,
}
# DataLoader arguments that a rebuilt loader copies from a built one.
_LOADER_ARGS = (
    "dataset", "batch_size", "num_workers", "collate_fn", "pin_memory", "drop_last", "timeout",
    "worker_init_fn", "multiprocessing_context", "generator", "prefetch_factor",
    "persistent_workers",
)  # fmt: skip


def build_dataloader(cfg: Any, name: str, keep_sampler: bool = False) -> Any:
    """A loader from `cfg`: a ``DataLoader`` (rebuilt only when its sampler is one of
    engine's, see the module doc), any other iterable as is, or MMEngine's dict.

    The dict takes `DataLoader`'s arguments and MMEngine's forms: ``dataset=dict(type=Cls,
    ...)``, ``sampler=dict(type='DefaultSampler' | 'InfiniteSampler' | Cls, ...)``,
    ``collate_fn=dict(type='pseudo_collate' | 'default_collate' | fn, ...)``,
    ``worker_init_fn=dict(type='worker_init_fn' | fn, ...)``, ``num_batch_per_epoch``.
    Without ``collate_fn``, torch's collate stacks the batch (MMEngine's Runner would use
    ``pseudo_collate``: pass it to keep lists).

    With ``keep_sampler`` (MMEngine's ``runner.build_dataloader``, for a loader used outside
    the Runner) a `DefaultSampler`/`InfiniteSampler` stays the loader's sampler, sharding by
    rank itself; given to the Runner, such a loader is rebuilt as above.

    Raises:
        TypeError/ValueError: one line naming the argument that is wrong and what is accepted.
    """
    if isinstance(cfg, DataLoader):
        return _rebuilt_with_shuffle(cfg)
    if not isinstance(cfg, dict):
        if not hasattr(cfg, "__iter__"):
            raise TypeError(
                f"{name} must be a DataLoader, an iterable or a dict of DataLoader arguments, "
                f"got {type(cfg).__name__}"
            )
        return cfg
    cfg = dict(cfg)
    if cfg.get("dataset") is None:
        raise ValueError(f"{name} dict needs a 'dataset', got keys {sorted(cfg)}")
    cfg["dataset"] = _build_dataset(cfg["dataset"], name)
    per_epoch = cfg.pop("num_batch_per_epoch", None)
    if per_epoch is not None:  # MMEngine's quick-debug option: the first batches only
        size = per_epoch * cfg.get("batch_size", 1) * get_dist_info()[1]
        cfg["dataset"] = Subset(cfg["dataset"], range(min(size, len(cfg["dataset"]))))
    seed = _apply_sampler(cfg, name, keep_sampler)
    if "collate_fn" in cfg:
        cfg["collate_fn"] = _function(cfg["collate_fn"], f"{name} collate_fn")
    if "worker_init_fn" in cfg:
        cfg["worker_init_fn"] = _worker_init(cfg, name)
    cfg.pop("disable_subprocess_warning", None)  # belongs to MMEngine's default init fn
    if cfg.get("persistent_workers") and not cfg.get("num_workers"):
        # MMEngine configs set it with workers in mind; torch refuses it without workers.
        logger.info("%s: persistent_workers=True ignored with num_workers=0", name)
        cfg.pop("persistent_workers")
    try:
        loader = DataLoader(**cfg)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{name}: DataLoader rejected the arguments: {err}") from None
    loader.engine_sampler_seed = seed
    return loader


def _build_dataset(dataset: Any, name: str) -> Any:
    if not isinstance(dataset, dict):
        return dataset
    kind = dataset.get("type")
    if not callable(kind):
        raise TypeError(
            f"{name} dataset dict needs type=<a dataset class>, got type={kind!r}; "
            "engine has no dataset registry: pass the class itself or a built dataset"
        )
    kwargs = {k: v for k, v in dataset.items() if k != "type"}
    try:
        built = kind(**kwargs)
    except TypeError as err:
        raise TypeError(
            f"{name} dataset {kind.__name__} rejected {sorted(kwargs)}: {err}"
        ) from None
    if hasattr(built, "full_init"):  # MMEngine's lazily initialised datasets
        built.full_init()
    return built


def _apply_sampler(cfg: dict, name: str, keep: bool = False) -> int | None:
    """Turn ``cfg['sampler']`` into ``cfg['shuffle']`` where it is one of engine's (with
    `keep`, build it instead); returns the sampler's explicit seed (None: the run's data seed)."""
    sampler = cfg.pop("sampler", None)
    if isinstance(sampler, dict):
        sampler = dict(sampler)
        kind = sampler.pop("type", "DefaultSampler")
        cls = _SAMPLERS.get(kind, kind) if isinstance(kind, str) else kind
        if cls in (DefaultSampler, InfiniteSampler):
            unknown = set(sampler) - {"shuffle", "seed", "round_up"}
            if unknown or (cls is InfiniteSampler and "round_up" in sampler):
                raise ValueError(
                    f"{name} sampler {cls.__name__} takes shuffle, seed"
                    f"{', round_up' if cls is DefaultSampler else ''}; got {sorted(sampler)}"
                )
            if keep:
                cfg["sampler"] = cls(cfg["dataset"], **sampler)
                return cfg["sampler"].seed
            cfg["shuffle"] = sampler.get("shuffle", True)
            return sampler.get("seed")
        if not isinstance(cls, type):
            raise ValueError(
                f"{name} sampler type {kind!r} is unknown; accepted: DefaultSampler, "
                "InfiniteSampler or a Sampler class"
            )
        sampler = cls(cfg["dataset"], **sampler)
    if isinstance(sampler, (DefaultSampler, InfiniteSampler)) and not keep:
        cfg["shuffle"] = sampler.shuffle
        return sampler.seed
    if sampler is not None:
        cfg["sampler"] = sampler
    return None


def _rebuilt_with_shuffle(loader: DataLoader) -> DataLoader:
    """A built loader whose sampler is engine's would be sharded twice (by the sampler and
    by Accelerate): rebuild it with the equivalent seeded shuffle."""
    sampler = loader.sampler
    if not isinstance(sampler, (DefaultSampler, InfiniteSampler)) or loader.batch_size is None:
        return loader
    kwargs = {k: getattr(loader, k) for k in _LOADER_ARGS}
    if loader.num_workers == 0:
        kwargs.pop("prefetch_factor")
    rebuilt = DataLoader(shuffle=sampler.shuffle, **kwargs)
    rebuilt.engine_sampler_seed = sampler.seed
    return rebuilt


def _function(spec: Any, what: str) -> Callable:
    """A function, or ``dict(type=<name or function>, **kwargs)`` -> a partial (always, as
    MMEngine builds it)."""
    if callable(spec):
        return spec
    if not isinstance(spec, dict) or "type" not in spec:
        raise TypeError(
            f"{what} should be a dict or callable object (a function or dict(type=...)), "
            f"got {spec!r}"
        )
    kind = spec["type"]
    fn = _FUNCTIONS.get(kind) if isinstance(kind, str) else kind
    if not callable(fn):
        raise ValueError(f"{what} type {kind!r} is unknown; accepted: a function or one of "
                         f"{sorted(_FUNCTIONS)}")  # fmt: skip
    return functools.partial(fn, **{k: v for k, v in spec.items() if k != "type"})


def _worker_init(cfg: dict, name: str) -> Callable:
    spec = cfg["worker_init_fn"]
    if isinstance(spec, dict) and spec.get("type") in ("worker_init_fn", worker_init_fn):
        # MMEngine's seeding function needs the loader's worker count and this rank.
        if "seed" not in spec:
            raise ValueError(f"{name} worker_init_fn=dict(type='worker_init_fn') needs a seed")
        spec = {"num_workers": cfg.get("num_workers", 0), "rank": get_dist_info()[0], **spec}
    return _function(spec, f"{name} worker_init_fn")


def apply_sampler_seed(prepared: Any, seed: int | None) -> None:
    """Give the seed of a `DefaultSampler`/`InfiniteSampler` (``engine_sampler_seed``) to
    the seedable sampler Accelerate put in `prepared`; ``None`` keeps the run's data seed."""
    if seed is None:
        return
    get = getattr(prepared, "get_sampler", None)
    sampler = get() if callable(get) else getattr(prepared, "sampler", None)
    if isinstance(sampler, SeedableRandomSampler):
        sampler.initial_seed = int(seed)

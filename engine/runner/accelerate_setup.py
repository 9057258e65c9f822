"""The Accelerator, seeding, and what the Accelerator prepares (optimizers, dataloaders).

`Runner` calls these once, while it builds a run: `make_accelerator`, then
`check_randomness`/`apply_randomness`, then `prepare_optimizers` and `prepare_loader`.
`seed_worker` is the ``worker_init_fn`` given to loaders with workers.

Example:
    >>> accelerator = make_accelerator('bf16', work_dir='work_dirs/demo', seed=0)
    >>> loader = prepare_loader(dict(dataset=ds, batch_size=8), accelerator, 'train_dataloader')
"""

from __future__ import annotations

import functools
import logging
import os
import random
from typing import Any

import torch
from torch import nn
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.utils.data import DataLoader

from engine.dataset.builder import apply_sampler_seed
from engine.model.base_model import attach_wrapper
from engine.model.wrappers import DEFAULT_WRAPPER_NAMES, FSDP_WRAPPER_NAMES
from engine.optim.optim_wrapper_dict import members
from engine.runner.build import build_dataloader
from engine.runner.deepspeed_config import configure_deepspeed, loader_batch_size

logger = logging.getLogger("engine")


def make_accelerator(
    mixed_precision: str | None = None,
    work_dir: str | os.PathLike | None = None,
    seed: int | None = None,
    log_with: Any = None,
    **kwargs: Any,
):
    """An ``Accelerator`` with engine's defaults: seedable shuffling (reproducible and
    exactly resumable data order), and the CPU backend when the launcher asks for several
    processes on a machine without a GPU (so ``torchrun``/``--multi_gpu`` just work)."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    if (
        "cpu" not in kwargs
        and not torch.cuda.is_available()
        and int(os.environ.get("WORLD_SIZE", "1")) > 1
    ):
        kwargs["cpu"] = True
    precision = mixed_precision or None
    if precision not in (None, "no", "fp16", "bf16", "fp8"):
        raise ValueError(
            f"mixed_precision {mixed_precision!r} is unknown; accepted: 'no', 'fp16', 'bf16', 'fp8'"
        )
    kwargs.setdefault(
        "dataloader_config",
        DataLoaderConfiguration(
            use_seedable_sampler=True,
            data_seed=seed,
            # With pinned memory the copy to the GPU then runs asynchronously.
            non_blocking=torch.cuda.is_available(),
        ),
    )
    return Accelerator(
        mixed_precision=precision,
        project_dir=None if work_dir is None else str(work_dir),
        log_with=log_with,
        **kwargs,
    )


def warn_if_fp16_on_cpu(accelerator: Any) -> None:
    """fp16 autocast needs a GPU: on a CPU Accelerate runs in fp32 without a word."""
    if str(accelerator.mixed_precision) == "fp16" and accelerator.device.type == "cpu":
        logger.warning(
            "mixed_precision='fp16' has no effect on a CPU: this run computes in fp32; "
            "use mixed_precision='bf16' for reduced precision on a CPU"
        )


# -- seeding --------------------------------------------------------------------------
def check_randomness(cfg: Any) -> dict:
    """``randomness=dict(seed=None, deterministic=False, diff_rank_seed=False)``, checked."""
    out = {"seed": None, "deterministic": False, "diff_rank_seed": False}
    if cfg is not None and not isinstance(cfg, dict):
        raise TypeError(f"randomness must be a dict such as dict(seed=0), got {type(cfg).__name__}")
    unknown = set(cfg or {}) - set(out)
    if unknown:
        raise ValueError(
            f"randomness has unknown keys {sorted(unknown)}; accepted: seed, deterministic, diff_rank_seed"
        )
    out.update(cfg or {})
    seed = out["seed"]
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32
    ):
        raise ValueError(f"randomness seed must be None or an int in [0, 2**32), got {seed!r}")
    for key in ("deterministic", "diff_rank_seed"):
        if not isinstance(out[key], bool):
            raise ValueError(f"randomness {key} must be True or False, got {out[key]!r}")
    return out


def apply_randomness(accelerator: Any, randomness: dict) -> None:
    """Seed every generator from ``randomness['seed']`` (when set), then give the
    seedable sampler one data seed on every process."""
    from accelerate.utils import set_seed

    if randomness["seed"] is not None:
        set_seed(
            randomness["seed"],
            device_specific=randomness["diff_rank_seed"],
            deterministic=randomness["deterministic"],
        )
    _share_data_seed(accelerator, randomness["seed"])


def _share_data_seed(accelerator: Any, seed: int | None) -> None:
    """Give Accelerate's seedable sampler one seed on every process.

    Without ``data_seed`` it shuffles with each process's own torch seed: random per
    process when no seed is set, offset by rank with ``diff_rank_seed``. The processes
    would then shard different permutations, and samples would repeat or go missing. Use
    the run's seed, else rank 0's random draw (as MMEngine's ``sync_random_seed``).
    """
    config = accelerator.dataloader_config
    if accelerator.num_processes == 1 or not config.use_seedable_sampler:
        return
    if config.data_seed is None:
        if seed is None:
            from accelerate.utils import broadcast

            draw = torch.tensor([random.SystemRandom().randrange(2**31)], device=accelerator.device)
            seed = int(broadcast(draw, from_process=0).item())
        config.data_seed = seed


def seed_worker(worker_id: int, rank: int = 0) -> None:
    """The ``worker_init_fn`` Runner gives DataLoaders with workers (unless one is passed).

    torch seeds each worker with the loader's base seed plus ``worker_id``; the base seed
    is drawn from the main process's RNG at every pass (so it follows
    ``randomness=dict(seed=...)`` and changes each epoch), but it is the same on every rank
    unless ``diff_rank_seed`` is set, so all ranks would augment alike. Mixing in the rank
    and reseeding ``random``, NumPy and torch gives every (rank, worker, epoch) its own
    stream that repeats run to run.
    """
    seed = (torch.initial_seed() + rank * 0x9E3779B97F4A7C15) % 2**64
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional; torch and random are seeded
        return
    np.random.seed(seed % 2**32)


# -- what Accelerate prepares ---------------------------------------------------------
def prepare_optimizers(optim_wrapper: Any, accelerator: Any) -> None:
    """Prepare each wrapper's optimizer (every member of an `OptimWrapperDict`) and
    attach the wrapper to `accelerator`."""
    for wrapper in members(optim_wrapper):
        # Accelerate's device placement round-trips the state through state_dict(), which
        # a ZeroRedundancyOptimizer cannot answer before it consolidates its shards (every
        # process but one fails). Its parameters are the placed model's already.
        zero = isinstance(wrapper.optimizer, ZeroRedundancyOptimizer)
        prepared = accelerator.prepare_optimizer(wrapper.optimizer, device_placement=not zero)
        wrapper.attach(accelerator, prepared)


def warn_if_whole_model_ddp_with_members(optim_wrapper: Any) -> None:
    """Warn when an `OptimWrapperDict` meets one DDP around the whole model (several
    processes, ``model_wrapper=None``)."""
    if len(members(optim_wrapper)) > 1:
        logger.warning(
            "optim_wrapper has members %s but model_wrapper=None puts the whole model in one "
            "DDP, which reduces gradients only for forwards that go through it; a train_step "
            "that calls sub-modules directly (a GAN) needs model_wrapper='separate'",
            list(optim_wrapper.keys()),
        )


def prepare_loader(loader: Any, accelerator: Any, name: str, prefetched: bool = False) -> Any:
    """Build `loader` from its dict if needed, give it `seed_worker`, and let Accelerate
    shard it; ``None`` stays ``None``. ``prefetched``: batches reach the device through
    `engine.runner.prefetch`, so Accelerate need not place them."""
    if loader is None:
        return None
    if isinstance(loader, dict) and accelerator.device.type == "cuda":
        loader = {"pin_memory": True, **loader}  # page-locked batches copy asynchronously
    loader = build_dataloader(loader, name)
    if isinstance(loader, DataLoader):
        if loader.num_workers > 0 and loader.worker_init_fn is None:
            # Accelerate copies the loader's arguments, this one included, when it shards it.
            loader.worker_init_fn = functools.partial(seed_worker, rank=accelerator.process_index)
        placement = False if _place_batches_ourselves(loader, accelerator, prefetched) else None
        prepared = accelerator.prepare_data_loader(loader, device_placement=placement)
        apply_sampler_seed(prepared, getattr(loader, "engine_sampler_seed", None))
        return prepared
    return loader


def check_has_batches(loader: Any) -> None:
    """Refuse a training loader with no batches (an empty dataset, or ``drop_last`` with a
    batch larger than the dataset): training would do nothing and save an untrained model."""
    try:
        length = len(loader)
    except TypeError:  # an iterable of unknown length
        return
    if length == 0:
        dataset = getattr(loader, "dataset", None)
        try:
            size = f"{len(dataset)} samples" if dataset is not None else "unknown size"
        except TypeError:
            size = "unknown size"
        raise ValueError(
            f"train_dataloader yields no batches (dataset of {size}, "
            f"batch_size={getattr(loader, 'batch_size', None)}, "
            f"drop_last={getattr(loader, 'drop_last', None)}); nothing to train: give it at "
            "least one batch (a smaller batch_size or drop_last=False)"
        )


def prefetch_device(accelerator: Any) -> torch.device | None:
    """The device training batches are prefetched to: a CUDA device, else None."""
    from accelerate.utils import DistributedType

    device = accelerator.device
    if device.type != "cuda" or accelerator.distributed_type == DistributedType.XLA:
        return None
    return device


def _place_batches_ourselves(loader: DataLoader, accelerator: Any, prefetched: bool) -> bool:
    """Whether Accelerate's per-batch device placement can be skipped for `loader`.

    On the CPU it only re-sends CPU tensors to the CPU; with the prefetcher the batches are
    moved by it (and the data preprocessor moves anything else). Sharding, seedable
    sampling and skipping on resume do not depend on placement; dispatching batches from
    the main process (IterableDatasets) and XLA's loader do, and keep it.
    """
    from accelerate.utils import DistributedType
    from torch.utils.data import IterableDataset

    if accelerator.distributed_type == DistributedType.XLA:
        return False
    if not (prefetched or accelerator.device.type == "cpu"):
        return False
    dispatch = accelerator.dispatch_batches
    if dispatch is None:
        dispatch = isinstance(loader.dataset, IterableDataset)
    return not dispatch


def needs_joint_prepare(accelerator: Any, model_wrapper: Any) -> bool:
    """True when Accelerate must prepare the model together with its optimizers: DeepSpeed
    builds one engine from both, and FSDP maps the optimizer's parameters onto the sharded
    ones. (Only for whole-model wrapping: `wrap_model`'s default.)"""
    from accelerate.utils import DistributedType

    whole = model_wrapper is None or model_wrapper in DEFAULT_WRAPPER_NAMES + FSDP_WRAPPER_NAMES
    joint = (DistributedType.DEEPSPEED, DistributedType.FSDP)
    return whole and accelerator.distributed_type in joint


def prepare_with_optimizers(
    model: nn.Module, optim_wrapper: Any, accelerator: Any, train_dataloader: Any = None
) -> nn.Module:
    """Prepare `model` and every optimizer of `optim_wrapper` in one ``accelerator.prepare``
    call (see `needs_joint_prepare`), attaching each wrapper to its prepared optimizer.
    Under DeepSpeed the config first takes the wrapper's clipping and accumulation
    (`engine.runner.deepspeed_config`), and `train_dataloader`'s batch size where 'auto'.

    Returns:
        The prepared model; forward passes of its steps run through it, as `prepare_model`.
    """
    configure_deepspeed(accelerator, optim_wrapper, loader_batch_size(train_dataloader))
    wrappers = members(optim_wrapper)
    prepared, *optimizers = accelerator.prepare(model, *[w.optimizer for w in wrappers])
    for wrapper, optimizer in zip(wrappers, optimizers):
        wrapper.attach(accelerator, optimizer)
    attach_wrapper(accelerator.unwrap_model(prepared), prepared)
    return prepared

"""`Runner`: builds the Accelerator and the run's objects, then calls the loop functions.

MMEngine-style dict arguments are translated here, once; the loops and hooks only see
built objects. The Runner holds no loop logic: see `engine.loops`.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from engine import loops
from engine.build import build_dataloader, build_hooks, build_schedules, parse_train_cfg
from engine.compilation import compile_model
from engine.evaluator import Evaluator
from engine.hooks import HookList
from engine.nan_guard import NanGuardHook, check_nan_policy
from engine.optim_build import amp_precision, build_optim_wrapper
from engine.signals import handling_signals
from engine.state import TrainState, updates_done
from engine.wrappers import wrap_model

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


class Runner:
    """Compose a training run from MMEngine-style arguments.

    Every argument may be a built object or MMEngine's dict form; see DESIGN.md for the
    accepted forms. ``launcher`` is accepted for MMEngine configs: the process group
    always comes from ``accelerate launch``.

    Failures: ``nan_policy`` (``'stop'``, ``'skip'`` or ``'ignore'``) says what a
    non-finite loss does (`engine.nan_guard`); SIGTERM/SIGINT during ``train()`` save a
    checkpoint at the end of the accumulation window and return (`engine.signals`; the
    ``signal`` default hook, ``default_hooks=dict(signal=None)`` turns it off).

    Speed: ``compile=True`` or ``dict(regional=True, mode=...)`` compiles the model in place
    (`engine.compilation`); ``prefetch`` (on by default) copies training batches to the
    GPU one step ahead on a side stream (`engine.prefetch`).

    Example:
        >>> runner = Runner(model=MyModel(), work_dir='work_dirs/demo',
        ...                 train_dataloader=dict(dataset=ds, batch_size=8, shuffle=True),
        ...                 train_cfg=dict(by_epoch=True, max_epochs=5),
        ...                 optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)))
        >>> runner.train()
    """

    def __init__(
        self,
        model: torch.nn.Module,
        work_dir: str | os.PathLike | None,
        train_dataloader: DataLoader | dict | None = None,
        val_dataloader: DataLoader | dict | None = None,
        test_dataloader: DataLoader | dict | None = None,
        train_cfg: dict | None = None,
        val_cfg: dict | None = None,
        test_cfg: dict | None = None,
        optim_wrapper: Any = None,
        param_scheduler: Any = None,
        val_evaluator: Any = None,
        test_evaluator: Any = None,
        default_hooks: dict | None = None,
        custom_hooks: list | None = None,
        load_from: str | os.PathLike | None = None,
        resume: bool | str = False,
        randomness: dict | None = None,
        mixed_precision: str | None = None,
        model_wrapper: Any = None,
        launcher: str | None = None,
        accelerator: Any = None,
        log_with: Any = None,
        compile: bool | dict = False,
        prefetch: bool = True,
        nan_policy: str = "stop",
    ) -> None:
        from accelerate.utils import set_seed

        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"model must be an nn.Module (an engine.BaseModel), got {type(model).__name__}"
            )
        check_nan_policy(nan_policy)
        _check_forward_takes_mode(model)
        self.work_dir = None if work_dir is None else Path(work_dir)
        if self.work_dir is not None and self.work_dir.exists() and not self.work_dir.is_dir():
            raise NotADirectoryError(
                f"work_dir {str(work_dir)!r} is a file; expected a directory (created if missing)"
            )
        randomness = _check_randomness(randomness)
        precision = mixed_precision or amp_precision(optim_wrapper)
        self.accelerator = accelerator or make_accelerator(
            precision, self.work_dir, randomness["seed"], log_with
        )
        _setup_logging(self.accelerator, self.work_dir)
        if self.work_dir is not None and self.accelerator.is_main_process:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        if randomness["seed"] is not None:
            set_seed(
                randomness["seed"],
                device_specific=randomness["diff_rank_seed"],
                deterministic=randomness["deterministic"],
            )
        _share_data_seed(self.accelerator, randomness["seed"])
        self.randomness = randomness

        self.train_cfg = parse_train_cfg(train_cfg) if train_cfg is not None else None
        self.val_interval = self.train_cfg["val_interval"] if self.train_cfg else 1
        self.val_begin = self.train_cfg["val_begin"] if self.train_cfg else 1
        self.val_cfg, self.test_cfg = val_cfg or {}, test_cfg or {}

        acc = self.accelerator
        model = compile_model(model, compile)  # in place, before any wrapper: keys unchanged
        model = model.to(acc.device) if model_wrapper is not None else model
        self.model = wrap_model(model, acc, model_wrapper)
        self._raw_model = acc.unwrap_model(self.model) if model_wrapper is None else model
        self.optim_wrapper = None
        if optim_wrapper is not None:
            self.optim_wrapper = build_optim_wrapper(self._raw_model, optim_wrapper, acc)
            _prepare_optimizers(self.optim_wrapper, acc)
            if model_wrapper is None and acc.num_processes > 1:
                _warn_if_whole_model_ddp_with_members(self.optim_wrapper)
        # Training batches are copied to the GPU one step ahead on a side stream (see
        # engine.prefetch) instead of by Accelerate in front of each step.
        self.prefetch_device = _prefetch_device(acc) if prefetch else None
        self.train_dataloader = _prepare_loader(
            train_dataloader, acc, "train_dataloader", self.prefetch_device is not None
        )
        self.val_dataloader = _prepare_loader(val_dataloader, acc, "val_dataloader")
        self.test_dataloader = _prepare_loader(test_dataloader, acc, "test_dataloader")
        self.val_evaluator = _build_evaluator(val_evaluator, "val_evaluator")
        self.test_evaluator = _build_evaluator(test_evaluator, "test_evaluator")

        self.state = TrainState(
            max_epochs=self.train_cfg.get("max_epochs") if self.train_cfg else None,
            max_iters=self.train_cfg.get("max_iters") if self.train_cfg else None,
        )
        schedules = build_schedules(
            param_scheduler, self._updates_per_epoch(), *self._schedule_limits()
        )
        self.hooks = HookList(
            build_hooks(default_hooks, custom_hooks, schedules, self._default_checkpoint_hook())
        )
        if nan_policy != "ignore":  # see engine.nan_guard
            self.hooks.add(NanGuardHook(nan_policy))
        self.load_from = load_from
        self.resume_from = resume
        self.launcher = launcher
        self._log_with = log_with
        self.last_metrics: dict = {}

    # -- what hooks read ------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def iter(self) -> int:
        return self.state.iter

    @property
    def max_epochs(self) -> int | None:
        return self.state.max_epochs

    @property
    def max_iters(self) -> int | None:
        return self.state.max_iters

    @property
    def logger(self) -> logging.Logger:
        return logger

    def _updates_per_epoch(self) -> int:
        if self.train_dataloader is None or self.optim_wrapper is None:
            return 1
        members = getattr(self.optim_wrapper, "optim_wrappers", None)
        first = next(iter(members.values())) if members else self.optim_wrapper
        return max(1, len(self.train_dataloader) // first.accumulative_counts)

    def _schedule_limits(self) -> tuple[int | None, int | None]:
        """(epochs, optimizer updates) of the whole run, to close schedules left open."""
        if self.train_cfg is None or self.train_dataloader is None or self.optim_wrapper is None:
            return None, None
        members = getattr(self.optim_wrapper, "optim_wrappers", None)
        acc = (next(iter(members.values())) if members else self.optim_wrapper).accumulative_counts
        counts = self.state.max_iters or self.state.max_epochs * len(self.train_dataloader)
        return self.state.max_epochs, updates_done(counts, acc, counts)

    # -- entry points ---------------------------------------------------------
    def train(self) -> dict:
        """Train to the configured limit; returns the last validation metrics (or {})."""
        needed = ("train_dataloader", "train_cfg", "optim_wrapper")
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            them = "it" if len(missing) == 1 else "them"
            raise ValueError(f"train() needs {', '.join(missing)}; pass {them} to Runner(...)")
        if (self.val_dataloader is None) != (self.val_evaluator is None):
            given, lacking = (
                ("val_dataloader", "val_evaluator")
                if self.val_evaluator is None
                else ("val_evaluator", "val_dataloader")
            )
            raise ValueError(
                f"{given} is set but {lacking} is None, so training could never validate; "
                "pass both (e.g. val_evaluator=Accuracy()) or neither"
            )
        if self._log_with is not None and not self.accelerator.trackers:
            # Trackers (TensorBoard, W&B, ...) write under work_dir, one run per train().
            name = self.work_dir.name if self.work_dir is not None else "engine"
            self.accelerator.init_trackers(name, config={k: v for k, v in self.train_cfg.items()})
        self.hooks.call("before_run", self)
        # SIGTERM/SIGINT stop training at the next window end, with a checkpoint
        # (engine.signals); the previous handlers come back however training ends.
        with handling_signals(self.hooks):
            self._load_checkpoint()
            train = loops.train_epochs if self.train_cfg["by_epoch"] else loops.train_iters
            self.state = train(self, self.state)
        self.hooks.call("after_run", self)
        if self.accelerator.trackers:
            self.accelerator.end_training()
        return self.last_metrics

    def val(self) -> dict:
        """Evaluate on ``val_dataloader`` with ``val_evaluator``; returns the metrics."""
        if self.val_dataloader is None or self.val_evaluator is None:
            raise ValueError("val() needs val_dataloader and val_evaluator")
        self.last_metrics = loops.evaluate(self, self.val_dataloader, self.val_evaluator, "val")
        return self.last_metrics

    def test(self) -> dict:
        """Evaluate on ``test_dataloader`` with ``test_evaluator``; returns the metrics."""
        if self.test_dataloader is None or self.test_evaluator is None:
            raise ValueError("test() needs test_dataloader and test_evaluator")
        self._load_checkpoint(weights_only=True)
        return loops.evaluate(self, self.test_dataloader, self.test_evaluator, "test")

    def _load_checkpoint(self, weights_only: bool = False) -> None:
        if not (self.load_from or self.resume_from):
            return
        from engine.resume import load_checkpoint

        load_checkpoint(self, False if weights_only else self.resume_from, self.load_from)

    def _default_checkpoint_hook(self) -> Any:
        """MMEngine's default: a checkpoint every epoch (by iterations: at the end)."""
        if self.work_dir is None or self.train_cfg is None:
            return None
        from engine.checkpoint_hook import CheckpointHook

        by_epoch = self.train_cfg["by_epoch"]
        return CheckpointHook(interval=1 if by_epoch else -1, by_epoch=by_epoch)


def _prepare_optimizers(optim_wrapper: Any, accelerator: Any) -> None:
    members = getattr(optim_wrapper, "optim_wrappers", None)
    for wrapper in members.values() if members else [optim_wrapper]:
        wrapper.attach(accelerator, accelerator.prepare_optimizer(wrapper.optimizer))


def _prepare_loader(loader: Any, accelerator: Any, name: str, prefetched: bool = False) -> Any:
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
        return accelerator.prepare_data_loader(loader, device_placement=placement)
    return loader


def _prefetch_device(accelerator: Any) -> torch.device | None:
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


def _warn_if_whole_model_ddp_with_members(optim_wrapper: Any) -> None:
    members = getattr(optim_wrapper, "optim_wrappers", None)
    if members:
        logger.warning(
            "optim_wrapper has members %s but model_wrapper=None puts the whole model in one "
            "DDP, which reduces gradients only for forwards that go through it; a train_step "
            "that calls sub-modules directly (a GAN) needs model_wrapper='separate'",
            sorted(members),
        )


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


def _build_evaluator(cfg: Any, name: str) -> Evaluator | None:
    from engine.evaluator import BaseMetric

    if cfg is None or isinstance(cfg, Evaluator):
        return cfg
    if not isinstance(cfg, BaseMetric | dict | list | tuple):
        raise TypeError(
            f"{name} must be an Evaluator, a BaseMetric, a dict with 'type' or a list of them, got {type(cfg).__name__}"
        )
    return Evaluator(cfg)


def _check_randomness(cfg: Any) -> dict:
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
    return out


def _check_forward_takes_mode(model: torch.nn.Module) -> None:
    """The stock steps call ``forward(*inputs, mode=...)``: a forward without ``mode``
    would fail at the first batch with Python's bare 'unexpected keyword' error."""
    import inspect

    from engine.model import BaseModel

    cls = type(model)
    steps = (cls.train_step, cls.val_step, cls.test_step)
    base = (BaseModel.train_step, BaseModel.val_step, BaseModel.test_step)
    if not isinstance(model, BaseModel) or all(s is not b for s, b in zip(steps, base)):
        return  # not a BaseModel, or its own steps call forward as they like
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return
    if "mode" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    raise TypeError(
        f"{cls.__name__}.forward{inspect.signature(model.forward)} has no `mode` argument; "
        "engine calls forward(*inputs, mode=...) with mode 'loss', 'predict' or 'tensor'"
    )


def _setup_logging(accelerator: Any, work_dir: Path | None) -> None:
    """Console on the main process only (others warn and worse); a log file in work_dir."""
    logger.setLevel(logging.INFO if accelerator.is_main_process else logging.WARNING)
    if not any(getattr(h, "_engine", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%m/%d %H:%M:%S"))
        handler._engine = True
        logger.addHandler(handler)
        logger.propagate = False
    if work_dir is not None and accelerator.is_main_process:
        work_dir.mkdir(parents=True, exist_ok=True)
        path = str(work_dir / "run.log")
        for h in list(logger.handlers):
            if (
                isinstance(h, logging.FileHandler)
                and getattr(h, "_engine", False)
                and h.baseFilename != os.path.abspath(path)
            ):
                logger.removeHandler(h)
                h.close()
        if not any(
            isinstance(h, logging.FileHandler) and h.baseFilename == os.path.abspath(path)
            for h in logger.handlers
        ):
            file_handler = logging.FileHandler(path)
            file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            file_handler._engine = True
            logger.addHandler(file_handler)

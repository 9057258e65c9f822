"""`Runner`: builds the Accelerator and the run's objects, then calls the loop functions.

MMEngine-style dict arguments are translated here, once; the loops and hooks only see
built objects. The Runner holds no loop logic: see `engine.loops`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from engine import loops
from engine.build import build_dataloader, build_hooks, build_schedules, parse_train_cfg
from engine.evaluator import Evaluator
from engine.hooks import HookList
from engine.optim_build import amp_precision, build_optim_wrapper
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
        "dataloader_config", DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed)
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
    ) -> None:
        from accelerate.utils import set_seed

        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"model must be an nn.Module (an engine.BaseModel), got {type(model).__name__}"
            )
        self.work_dir = None if work_dir is None else Path(work_dir)
        randomness = {
            "seed": None,
            "deterministic": False,
            "diff_rank_seed": False,
            **(randomness or {}),
        }
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
        self.randomness = randomness

        self.train_cfg = parse_train_cfg(train_cfg) if train_cfg is not None else None
        self.val_interval = self.train_cfg["val_interval"] if self.train_cfg else 1
        self.val_begin = self.train_cfg["val_begin"] if self.train_cfg else 1
        self.val_cfg, self.test_cfg = val_cfg or {}, test_cfg or {}

        acc = self.accelerator
        model = model.to(acc.device) if model_wrapper is not None else model
        self.model = wrap_model(model, acc, model_wrapper)
        self._raw_model = acc.unwrap_model(self.model) if model_wrapper is None else model
        self.optim_wrapper = None
        if optim_wrapper is not None:
            self.optim_wrapper = build_optim_wrapper(self._raw_model, optim_wrapper, acc)
            _prepare_optimizers(self.optim_wrapper, acc)
        self.train_dataloader = _prepare_loader(train_dataloader, acc, "train_dataloader")
        self.val_dataloader = _prepare_loader(val_dataloader, acc, "val_dataloader")
        self.test_dataloader = _prepare_loader(test_dataloader, acc, "test_dataloader")
        self.val_evaluator = _build_evaluator(val_evaluator)
        self.test_evaluator = _build_evaluator(test_evaluator)

        self.state = TrainState(
            max_epochs=self.train_cfg.get("max_epochs") if self.train_cfg else None,
            max_iters=self.train_cfg.get("max_iters") if self.train_cfg else None,
        )
        schedules = build_schedules(
            param_scheduler, self._updates_per_epoch(), *self._schedule_limits()
        )
        self.hooks = HookList(build_hooks(default_hooks, custom_hooks, schedules))
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
        if self.train_cfg is None or self.train_dataloader is None or self.optim_wrapper is None:
            raise ValueError("train() needs train_dataloader, train_cfg and optim_wrapper")
        if self._log_with is not None and not self.accelerator.trackers:
            # Trackers (TensorBoard, W&B, ...) write under work_dir, one run per train().
            name = self.work_dir.name if self.work_dir is not None else "engine"
            self.accelerator.init_trackers(name, config={k: v for k, v in self.train_cfg.items()})
        self.hooks.call("before_run", self)
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
        from engine import checkpoint

        if self.resume_from and not weights_only:
            checkpoint.resume(self, self.resume_from)
        elif self.load_from:
            checkpoint.load_weights(self, self.load_from)


def _prepare_optimizers(optim_wrapper: Any, accelerator: Any) -> None:
    members = getattr(optim_wrapper, "optim_wrappers", None)
    for wrapper in members.values() if members else [optim_wrapper]:
        wrapper.attach(accelerator, accelerator.prepare_optimizer(wrapper.optimizer))


def _prepare_loader(loader: Any, accelerator: Any, name: str) -> Any:
    if loader is None:
        return None
    loader = build_dataloader(loader, name)
    if isinstance(loader, DataLoader):
        return accelerator.prepare_data_loader(loader)
    return loader


def _build_evaluator(cfg: Any) -> Evaluator | None:
    if cfg is None or isinstance(cfg, Evaluator):
        return cfg
    return Evaluator(cfg)


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

"""`Runner`: builds the Accelerator and the run's objects, then calls the loop functions.

MMEngine-style dict arguments are translated here, once (through `engine.runner.build` and
`engine.optim.builder`); the loops and hooks only see built objects. The Accelerator, seeding
and what Accelerate prepares are set up by `engine.runner.accelerate_setup`, the log handlers by
`engine.runner.log_setup`. The Runner holds no loop logic: see `engine.runner.loops`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from engine.checkpoint.disk_errors import make_work_dir
from engine.hooks.checkpoint_hook import CheckpointHook
from engine.hooks.hook import HookList
from engine.hooks.nan_guard_hook import NanGuardHook, check_nan_policy
from engine.model.base_model import check_forward_takes_mode
from engine.model.compilation import compile_model
from engine.model.sync_batchnorm import revert_sync_batchnorm
from engine.model.wrappers import wrap_model
from engine.optim.builder import amp_precision, build_optim_wrapper
from engine.optim.optim_wrapper_dict import members
from engine.optim.scheduler.apply import epoch_end_updates
from engine.runner.accelerate_setup import (
    apply_randomness,
    check_randomness,
    make_accelerator,
    needs_joint_prepare,
    prefetch_device,
    prepare_loader,
    prepare_optimizers,
    prepare_with_optimizers,
    seed_worker,
    warn_if_fp16_on_cpu,
    warn_if_whole_model_ddp_with_members,
)
from engine.runner.build import build_evaluator, build_hooks, build_schedules
from engine.runner.build_objects import build_model, check_model_arg, registered_model_wrapper
from engine.runner.cpu_threads import set_cpu_threads
from engine.runner.custom_loops import split_train_cfg
from engine.runner.entry_points import RunnerEntryPoints
from engine.runner.log_setup import setup_logging
from engine.runner.run_folder import (
    config_dict,
    discarding_unused_run_folder,
    new_run_folder,
    write_config,
)
from engine.runner.runner_attributes import RunnerAttributes
from engine.runner.runner_options import (
    accelerator_kwargs,
    scale_lr,
    unused_arguments,
)
from engine.runner.trackers import check_trackers_installed
from engine.runner.train_state import TrainState, updates_done

logger = logging.getLogger("engine")

# make_accelerator and seed_worker live in engine.accelerate_setup; users and tests also
# import them from here.
__all__ = ["Runner", "make_accelerator", "seed_worker"]


class Runner(RunnerAttributes, RunnerEntryPoints):
    """Compose a training run from MMEngine-style arguments.

    Every argument may be a built object or MMEngine's dict form (the README's table "From
    MMEngine to engine" lists the forms). ``launcher`` is accepted for MMEngine configs: the
    process group always comes from ``accelerate launch``. ``cfg``: the run's config (a
    dataclass or dict), written to ``<log_dir>/config.json``, given to trackers as
    hyper-parameters and recorded in checkpoints and exports. Each run logs into its own
    ``log_dir = work_dir/<timestamp>/``; checkpoints stay in ``work_dir``.

    Failures: ``nan_policy`` (``'stop'``, ``'skip'`` or ``'ignore'``) says what a
    non-finite loss does (`engine.hooks.nan_guard_hook`); SIGTERM/SIGINT during ``train()`` save a
    checkpoint at the end of the accumulation window and return (`engine.hooks.signal_hook`; the
    ``signal`` default hook, ``default_hooks=dict(signal=None)`` turns it off).

    Speed: ``compile=True`` or ``dict(regional=True, mode=...)`` compiles the model in place
    (`engine.model.compilation`); ``prefetch`` (on by default) copies training batches to the
    GPU one step ahead on a side stream (`engine.runner.prefetch`).

    Example:
        >>> runner = Runner(model=MyModel(), work_dir='work_dirs/demo',
        ...                 train_dataloader=dict(dataset=ds, batch_size=8, shuffle=True),
        ...                 train_cfg=dict(by_epoch=True, max_epochs=5),
        ...                 optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)))
        >>> runner.train()
    """

    @discarding_unused_run_folder
    def __init__(
        self,
        model: torch.nn.Module | dict | Any,
        work_dir: str | os.PathLike | None = None,
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
        model_wrapper_cfg: Any = None,
        auto_scale_lr: dict | None = None,
        data_preprocessor: Any = None,
        env_cfg: dict | None = None,
        log_processor: dict | None = None,
        log_level: str | int = "INFO",
        visualizer: Any = None,
        default_scope: str | None = None,
        experiment_name: str | None = None,
        cfg: Any = None,
    ) -> None:
        if model_wrapper_cfg is not None:  # MMEngine's name for model_wrapper
            if model_wrapper is not None:
                raise ValueError("pass model_wrapper or MMEngine's model_wrapper_cfg, not both")
            model_wrapper = model_wrapper_cfg
        if work_dir is not None and not isinstance(work_dir, str | os.PathLike):
            raise TypeError(
                f"work_dir must be a path (str or Path) or None, got {type(work_dir).__name__}"
            )
        check_nan_policy(nan_policy)
        check_model_arg(model)
        self.work_dir = None if work_dir is None else Path(work_dir)
        if self.work_dir is not None and self.work_dir.exists() and not self.work_dir.is_dir():
            raise NotADirectoryError(
                f"work_dir {str(work_dir)!r} is a file; expected a directory (created if missing)"
            )
        randomness = check_randomness(randomness)
        check_trackers_installed(log_with)
        # The run's settings as a dict: config.json, trackers, exports (and MMEngine's runner.cfg)
        self.run_config = config_dict(cfg)
        precision = mixed_precision or amp_precision(optim_wrapper)
        self.accelerator = accelerator or make_accelerator(
            precision, self.work_dir, randomness["seed"], log_with, **accelerator_kwargs(env_cfg)
        )
        if self.work_dir is not None and self.accelerator.is_main_process:
            make_work_dir(self.work_dir)  # read-only or full: one line, before anything runs
        # This run's log, scalars, config and pictures; checkpoints stay in work_dir.
        self.log_dir = None
        if self.work_dir is not None:
            self.log_dir = new_run_folder(self.work_dir, self.accelerator.is_main_process)
            if accelerator is None:  # trackers write into the run folder too
                project = self.accelerator.project_configuration
                project.project_dir = project.logging_dir = str(self.log_dir)
        setup_logging(self.accelerator, self.log_dir)
        warn_if_fp16_on_cpu(self.accelerator)
        if self.log_dir is not None and self.run_config and self.accelerator.is_main_process:
            write_config(self.log_dir, self.run_config)
        set_cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", self.accelerator.num_processes)))
        apply_randomness(self.accelerator, randomness)
        self.randomness = randomness
        log_dir = self.log_dir
        self._init_mmengine_view(
            experiment_name,
            self.run_config if dataclasses.is_dataclass(cfg) else cfg,
            log_level,
            visualizer,
            default_scope,
            log_processor,
        )
        self.log_dir = log_dir  # the run folder, work_dir/<timestamp>/, as MMEngine's
        unused_arguments(default_scope=default_scope)
        # Built after seeding, as in MMEngine: randomness=dict(seed=...) repeats the init.
        model = build_model(model, data_preprocessor)
        if self.accelerator.num_processes == 1:  # as MMEngine: SyncBN needs a process group
            model = revert_sync_batchnorm(model)
        check_forward_takes_mode(model)

        # A loop ported code registered keeps its own arguments (engine.runner.custom_loops).
        self.train_cfg, self._custom_loop = None, None
        if train_cfg is not None:
            self.train_cfg, *custom = split_train_cfg(train_cfg)
            self._custom_loop = tuple(custom) if custom[0] is not None else None
        self.val_interval = self.train_cfg["val_interval"] if self.train_cfg else 1
        self.val_begin = self.train_cfg["val_begin"] if self.train_cfg else 1
        self.val_cfg, self.test_cfg = val_cfg or {}, test_cfg or {}

        acc = self.accelerator
        model_wrapper = registered_model_wrapper(model_wrapper, acc.num_processes)
        model = compile_model(model, compile)  # in place, before any wrapper: keys unchanged
        model = model.to(acc.device) if model_wrapper is not None else model
        self.optim_wrapper = None
        if optim_wrapper is not None and needs_joint_prepare(acc, model_wrapper):
            # DeepSpeed/FSDP: Accelerate prepares the model with its optimizers. Not run on
            # this project's CPU machines (see docs/distributed.md).
            self.optim_wrapper = build_optim_wrapper(model, optim_wrapper, acc)
            self.model = prepare_with_optimizers(model, self.optim_wrapper, acc, train_dataloader)
            self._raw_model = acc.unwrap_model(self.model)
        else:
            self.model = wrap_model(model, acc, model_wrapper)
            self._raw_model = acc.unwrap_model(self.model) if model_wrapper is None else model
        if optim_wrapper is not None and self.optim_wrapper is None:
            self.optim_wrapper = build_optim_wrapper(self._raw_model, optim_wrapper, acc)
            prepare_optimizers(self.optim_wrapper, acc)
            if model_wrapper is None and acc.num_processes > 1:
                warn_if_whole_model_ddp_with_members(self.optim_wrapper)
        # Training batches are copied to the GPU one step ahead on a side stream (see
        # engine.prefetch) instead of by Accelerate in front of each step.
        self.prefetch_device = prefetch_device(acc) if prefetch else None
        self.train_dataloader = prepare_loader(
            train_dataloader, acc, "train_dataloader", self.prefetch_device is not None
        )
        self.val_dataloader = prepare_loader(val_dataloader, acc, "val_dataloader")
        self.test_dataloader = prepare_loader(test_dataloader, acc, "test_dataloader")
        self.val_evaluator = build_evaluator(val_evaluator, "val_evaluator")
        self.test_evaluator = build_evaluator(test_evaluator, "test_evaluator")
        scale_lr(self.optim_wrapper, auto_scale_lr, self.train_dataloader, acc.num_processes)

        self.state = TrainState(
            max_epochs=self.train_cfg.get("max_epochs") if self.train_cfg else None,
            max_iters=self.train_cfg.get("max_iters") if self.train_cfg else None,
        )
        schedules = build_schedules(
            param_scheduler, self._updates_per_epoch(), *self._schedule_limits()
        )
        self.param_schedulers = schedules
        self.hooks = HookList(
            build_hooks(default_hooks, custom_hooks, schedules, self._default_checkpoint_hook())
        )
        if nan_policy != "ignore":  # see engine.nan_guard
            self.hooks.add(NanGuardHook(nan_policy))
        self.load_from = load_from
        self.resume_from = resume
        # What of load_from/resume is in the model: None, "weights" (val()/test() ran
        # first) or "all" (train() resumed). Loaded once: later calls keep trained weights.
        self._loaded: str | None = None
        self.launcher = launcher
        self._log_with = log_with
        self.last_metrics: dict = {}
        self.resumed_from: Path | None = None
        self._build_loop_objects()

    def _updates_per_epoch(self) -> Any:
        """Updates done by the end of each epoch (a function of the epoch count): windows
        span epochs, so converted epoch schedules land on the exact update."""
        if self.train_dataloader is None or self.optim_wrapper is None:
            return 1
        length = len(self.train_dataloader)
        acc = members(self.optim_wrapper)[0].accumulative_counts
        return epoch_end_updates(length, acc, self.state.total_iters(length))

    def _schedule_limits(self) -> tuple[int | None, int | None]:
        """(epochs, optimizer updates) of the whole run, to close schedules left open."""
        if self.train_cfg is None or self.train_dataloader is None or self.optim_wrapper is None:
            return None, None
        acc = members(self.optim_wrapper)[0].accumulative_counts
        counts = self.state.total_iters(len(self.train_dataloader))
        return self.state.max_epochs, updates_done(counts, acc, counts)

    def _default_checkpoint_hook(self) -> Any:
        """MMEngine's default: a checkpoint every epoch (by iterations: at the end)."""
        if self.work_dir is None or self.train_cfg is None:
            return None
        by_epoch = self.train_cfg["by_epoch"]
        return CheckpointHook(interval=1 if by_epoch else -1, by_epoch=by_epoch)

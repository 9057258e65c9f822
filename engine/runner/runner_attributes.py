"""What MMEngine hooks and scripts read from a Runner, as one small base of `Runner`.

MMEngine's hooks read ``runner.iter``, ``runner.rank``, ``runner.message_hub``,
``runner.train_loop.max_iters`` and call ``runner.call_hook(...)``. The counts are views
of `TrainState` (nothing here keeps a second copy); the hub, logger and visualizer are
MMEngine's named instances for this run (`engine.logging`, `engine.visualization`).
"""

from __future__ import annotations

import logging
from typing import Any

from engine.config_dict import Config
from engine.hooks.hook import EVENTS, HookList
from engine.logging import MessageHub, MMLogger
from engine.registry import DefaultScope
from engine.runner import custom_loops as _loops
from engine.runner import runner_builders as _builders
from engine.runner.log_processor import DefaultLogProcessor
from engine.runner.loop_objects import EpochBasedTrainLoop, IterBasedTrainLoop
from engine.runner.runner_builders import make_visualizer
from engine.runner.runner_options import run_identity, runner_kwargs


class RunnerAttributes:
    """MMEngine's Runner surface over engine's run objects (mixed into `Runner`)."""

    in_after_train_iter = False  # set by the loops around after_train_iter (see `iter`)

    def _init_mmengine_view(
        self,
        experiment_name: Any,
        cfg: Any,
        log_level: Any,
        visualizer: Any,
        scope: Any,
        log_processor: dict | None = None,
    ) -> None:
        acc = self.accelerator
        self.timestamp, self.experiment_name = run_identity(experiment_name)
        self.cfg = cfg if isinstance(cfg, Config) else Config(dict(cfg or {}))
        self.log_dir = self.work_dir  # the run's folder for logs and traces
        self.rank, self.world_size = acc.process_index, acc.num_processes
        self.distributed = acc.num_processes > 1
        self.seed = self.randomness["seed"]
        # A fresh hub per Runner (two runs in the same second share a default name), made
        # the current instance so that MessageHub.get_current_instance() finds it.
        MessageHub._instance_dict.pop(self.experiment_name, None)
        self.message_hub = MessageHub.get_instance(self.experiment_name)
        level = logging.getLevelName(log_level) if isinstance(log_level, str) else log_level
        if not isinstance(level, int):
            raise ValueError(f"log_level {log_level!r} is not a logging level such as 'INFO'")
        self._logger = MMLogger.get_instance(self.experiment_name, log_level=level)
        self._logger.setLevel(level)
        if acc.is_main_process:  # the other processes stay at WARNING (log_setup)
            logging.getLogger("engine").setLevel(level)
        self.visualizer = make_visualizer(visualizer, self.experiment_name, acc)
        self.default_scope = scope
        # A configured processor writes LoggerHook's lines; the default leaves engine's own.
        self.log_processor = (
            DefaultLogProcessor()
            if log_processor is None
            else _builders.build_log_processor(self, log_processor)
        )
        if scope is not None:
            DefaultScope.get_instance(self.experiment_name, scope_name=scope)

    def _build_loop_objects(self) -> None:
        """Keep each loop's cfg until the loop is first used, as MMEngine does (its
        ``runner._train_loop`` is a dict until ``runner.train_loop`` or ``train()``): the loops
        are views over built objects, so nothing is checked late by this."""
        self._train_loop = dict(self.train_cfg) if self.train_cfg is not None else None
        self._val_loop = dict(self.val_cfg) if self.val_dataloader is not None else None
        self._test_loop = dict(self.test_cfg) if self.test_dataloader is not None else None

    @property
    def train_loop(self) -> Any:
        """engine's loop view over ``train_cfg`` or the loop ported code registered
        (``cls(runner=, dataloader=, **train_cfg)``); None without ``train_cfg``."""
        if isinstance(self._train_loop, dict):
            custom = getattr(self, "_custom_loop", None)
            if custom is not None:
                cls, args = custom
                self._train_loop = cls(runner=self, dataloader=self.train_dataloader, **args)
            else:
                cfg = self.train_cfg
                kind = EpochBasedTrainLoop if cfg["by_epoch"] else IterBasedTrainLoop
                self._train_loop = kind(self, self.train_dataloader, cfg)
        return self._train_loop

    @train_loop.setter
    def train_loop(self, loop: Any) -> None:
        self._train_loop = loop

    @property
    def val_loop(self) -> Any:
        """``ValLoop`` (or the ``type`` that ``val_cfg`` names) over the val loader and
        evaluator; None without ``val_dataloader``."""
        if isinstance(self._val_loop, dict):
            self._val_loop = _loops.build_val_loop(self, self._val_loop)
        return self._val_loop

    @val_loop.setter
    def val_loop(self, loop: Any) -> None:
        self._val_loop = loop

    @property
    def test_loop(self) -> Any:
        """``TestLoop`` (or the ``type`` that ``test_cfg`` names); None without ``test_dataloader``."""
        if isinstance(self._test_loop, dict):
            self._test_loop = _loops.build_test_loop(self, self._test_loop)
        return self._test_loop

    @test_loop.setter
    def test_loop(self, loop: Any) -> None:
        self._test_loop = loop

    @classmethod
    def from_cfg(cls, cfg: dict) -> Any:
        """MMEngine's ``Runner.from_cfg(cfg)``: the config's Runner arguments, ``cfg`` kept."""
        return cls(**runner_kwargs(cfg))

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call event `fn_name` on every hook that handles it, in priority order. A name
        that is not one of engine's events (a ported loop's own, e.g. ``'before_warmup_iter'``)
        is called on every hook that has such a method, as MMEngine does."""
        if fn_name in EVENTS:
            self.hooks.call(fn_name, self, **kwargs)
            return
        for hook in self.hooks:
            method = getattr(hook, fn_name, None)
            if callable(method):
                method(self, **kwargs)

    # MMEngine's public builders (engine.runner.runner_builders, custom_loops), bound as methods.
    build_model = _builders.build_model
    build_optim_wrapper = _builders.build_optim_wrapper
    scale_lr = _builders.scale_lr
    build_param_scheduler = _builders.build_param_scheduler
    build_evaluator = _builders.build_evaluator
    build_dataloader = _builders.build_dataloader
    build_train_loop = _loops.build_train_loop
    build_val_loop = _loops.build_val_loop
    build_test_loop = _loops.build_test_loop
    build_log_processor = _builders.build_log_processor
    build_message_hub = _builders.build_message_hub
    build_logger = _builders.build_logger
    build_visualizer = _builders.build_visualizer
    register_hook = _builders.register_hook
    register_hooks = _builders.register_hooks
    register_default_hooks = _builders.register_default_hooks
    register_custom_hooks = _builders.register_custom_hooks
    get_hooks_info = _builders.get_hooks_info

    @property
    def _hooks(self) -> list:
        """MMEngine's name for the hooks in priority order (assignable, as its tests do)."""
        return self.hooks.hooks

    @_hooks.setter
    def _hooks(self, hooks: list) -> None:
        self.hooks = HookList(hooks)

    @property
    def experiment_name(self) -> str:
        return self._experiment_name

    @experiment_name.setter
    def experiment_name(self, name: str) -> None:
        self._experiment_name = name

    # -- counts: views of TrainState, as MMEngine's hooks see them ----------------------
    @property
    def iter(self) -> int:
        """Iterations done; inside ``after_train_iter`` the index of the one that just ran
        (MMEngine advances its count after that event)."""
        return self.state.iter - (1 if self.in_after_train_iter else 0)

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def max_epochs(self) -> int | None:
        return self.state.max_epochs

    @property
    def max_iters(self) -> int | None:
        """The run's iterations (for an epoch-based run, ``max_epochs * len(loader)``)."""
        loop = getattr(self, "train_loop", None)
        return loop.max_iters if loop is not None else self.state.max_iters

    @property
    def deterministic(self) -> bool:
        """``randomness['deterministic']``: deterministic algorithms were asked for."""
        return bool(self.randomness.get("deterministic", False))

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    @property
    def model_name(self) -> str:
        return type(getattr(self, "_raw_model", self.model)).__name__

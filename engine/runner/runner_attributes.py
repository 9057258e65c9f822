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
from engine.logging import MessageHub, MMLogger
from engine.optim.builder import build_optim_wrapper
from engine.registry import VISUALIZERS, DefaultScope
from engine.runner.build import build_hook
from engine.runner.build_objects import build_object
from engine.runner.log_processor import LogProcessor
from engine.runner.loop_objects import (
    EpochBasedTrainLoop,
    IterBasedTrainLoop,
    TestLoop,
    ValLoop,
)
from engine.runner.runner_options import run_identity, runner_kwargs
from engine.visualization import Visualizer


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
        self.visualizer = _visualizer(visualizer, self.experiment_name, acc)
        self.default_scope = scope
        self.log_processor = LogProcessor(
            **{k: v for k, v in (log_processor or {}).items() if k != "type"}
        )
        if scope is not None:
            DefaultScope.get_instance(self.experiment_name, scope_name=scope)

    def _build_loop_objects(self) -> None:
        cfg = self.train_cfg
        self.train_loop = None
        if cfg is not None:
            kind = EpochBasedTrainLoop if cfg["by_epoch"] else IterBasedTrainLoop
            self.train_loop = kind(self, self.train_dataloader, cfg)
        test_fp16 = bool(self.test_cfg.get("fp16", False))
        self.val_loop = ValLoop(self, self.val_dataloader, self.val_evaluator,
                                bool(self.val_cfg.get("fp16", False)))  # fmt: skip
        self.test_loop = TestLoop(self, self.test_dataloader, self.test_evaluator, test_fp16)

    @classmethod
    def from_cfg(cls, cfg: dict) -> Any:
        """MMEngine's ``Runner.from_cfg(cfg)``: the config's Runner arguments, ``cfg`` kept."""
        return cls(**runner_kwargs(cfg))

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call event `fn_name` on every hook that handles it, in priority order."""
        self.hooks.call(fn_name, self, **kwargs)

    def build_optim_wrapper(self, optim_wrapper: Any) -> Any:
        """MMEngine's ``runner.build_optim_wrapper(cfg)``: a built wrapper as it is, else one
        built for this run's model (``engine.optim.build_optim_wrapper``)."""
        return build_optim_wrapper(self._raw_model, optim_wrapper, self.accelerator)

    def register_hook(self, hook: Any, priority: int | str | None = None) -> None:
        """Add a `Hook` (or ``dict(type=...)``), as MMEngine's ``runner.register_hook``."""
        self.hooks.add(build_hook(hook), priority)

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
    def logger(self) -> logging.Logger:
        return self._logger

    @property
    def model_name(self) -> str:
        return type(getattr(self, "_raw_model", self.model)).__name__


def _visualizer(cfg: Any, name: str, accelerator: Any) -> Visualizer:
    """The run's Visualizer: a built one (given the accelerator), a dict, or a new one."""
    if isinstance(cfg, Visualizer):
        cfg.accelerator = cfg.accelerator or accelerator
        return cfg
    if isinstance(cfg, dict):
        args = {k: v for k, v in cfg.items() if k != "type"}
        args.setdefault("name", name)
        if "type" in cfg and cfg["type"] not in ("Visualizer", Visualizer):
            return build_object(cfg, VISUALIZERS, "visualizer", default_args={"name": name})
        if Visualizer.check_instance_created(args["name"]):
            return Visualizer.get_instance(args["name"])
        return Visualizer.get_instance(accelerator=accelerator, **args)
    if cfg is not None:
        raise TypeError(f"visualizer must be a Visualizer or a dict, got {type(cfg).__name__}")
    return Visualizer.get_instance(name, accelerator=accelerator)

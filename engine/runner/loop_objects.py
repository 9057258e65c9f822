"""MMEngine's loop objects (``runner.train_loop``, ``val_loop``, ``test_loop``) over engine's loops.

The loop functions in `engine.runner.loops` do the work and `TrainState` holds the counts;
these objects are the views MMEngine hooks read (``runner.train_loop.iter``,
``.max_iters``, ``.dataloader``, ``.stop_training``) and the ``run()`` MMEngine users call.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from engine.runner import loops


def eval_autocast(runner: Any, cfg: dict | None) -> Any:
    """float16 autocast on the run's device when ``cfg`` (a val/test cfg) says ``fp16=True``."""
    if not (cfg or {}).get("fp16", False):
        return contextlib.nullcontext()
    return torch.autocast(runner.accelerator.device.type, dtype=torch.float16)


class BaseLoop:
    """A loop bound to a runner and a dataloader; subclasses define ``run()``."""

    def __init__(self, runner: Any, dataloader: Any) -> None:
        self._runner = runner
        self.dataloader = dataloader

    @property
    def runner(self) -> Any:
        return self._runner

    def run(self) -> Any:
        raise NotImplementedError


class _TrainLoop(BaseLoop):
    """What MMEngine's train loops expose; ``run()`` is `Runner.train()`'s loop part."""

    by_epoch = True

    def __init__(self, runner: Any, dataloader: Any, cfg: dict) -> None:
        super().__init__(runner, dataloader)
        self.val_begin = cfg["val_begin"]
        self.val_interval = cfg["val_interval"]
        self.dynamic_intervals = cfg.get("dynamic_intervals") or []

    @property
    def _state(self) -> Any:
        return self._runner.state

    @property
    def iter(self) -> int:
        """MMEngine's ``runner.iter``: in ``after_train_iter``, the index of the iteration that
        just ran (MMEngine advances it after the hook); elsewhere, the iterations done."""
        return self._state.iter - (1 if self._runner.in_after_train_iter else 0)

    @property
    def epoch(self) -> int:
        return self._state.epoch

    # MMEngine's private names, which its tests and some hooks set directly.
    @property
    def _iter(self) -> int:
        return self._state.iter

    @_iter.setter
    def _iter(self, value: int) -> None:
        self._state.iter = value

    @property
    def _epoch(self) -> int:
        return self._state.epoch

    @_epoch.setter
    def _epoch(self, value: int) -> None:
        self._state.epoch = value

    @property
    def max_epochs(self) -> int | None:
        return self._state.max_epochs

    @property
    def max_iters(self) -> int | None:
        """The run's iterations (``max_epochs * len(dataloader)`` when training by epochs)."""
        return self._state.total_iters(loops._length(self.dataloader))

    @property
    def stop_training(self) -> bool:
        return self._state.should_stop

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self._state.should_stop = bool(value)

    def run(self) -> Any:
        """Train from the runner's state to the limit (what ``Runner.train()`` runs)."""
        train = loops.train_epochs if self.by_epoch else loops.train_iters
        self._runner.state = train(self._runner, self._runner.state)
        return self._runner.model


class EpochBasedTrainLoop(_TrainLoop):
    """``train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=..., val_interval=...)``."""

    by_epoch = True


class IterBasedTrainLoop(_TrainLoop):
    """``train_cfg=dict(type='IterBasedTrainLoop', max_iters=..., val_interval=...)``."""

    by_epoch = False


class _EvalLoop(BaseLoop):
    mode = "val"

    def __init__(self, runner: Any, dataloader: Any, evaluator: Any, fp16: bool = False) -> None:
        super().__init__(runner, dataloader)
        self.evaluator = evaluator
        self.fp16 = bool(fp16)

    def run(self) -> dict:
        """Evaluate the model now (no checkpoint is loaded: see ``Runner.val()``/``test()``);
        ``fp16=True`` runs the steps under float16 autocast, as MMEngine's ``test_cfg``."""
        with eval_autocast(self._runner, {"fp16": self.fp16}):
            return loops.evaluate(self._runner, self.dataloader, self.evaluator, self.mode)


class ValLoop(_EvalLoop):
    """``runner.val_loop.run()``: evaluate on ``val_dataloader`` with ``val_evaluator``."""

    mode = "val"


class TestLoop(_EvalLoop):
    """``runner.test_loop.run()``: evaluate on ``test_dataloader`` with ``test_evaluator``."""

    mode = "test"

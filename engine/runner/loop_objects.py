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
from engine.runner.build import parse_train_cfg
from engine.runner.infinite_iterator import _InfiniteDataloaderIterator
from engine.runner.val_schedule import val_interval_at


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
    """What MMEngine's train loops expose; ``run()`` is `Runner.train()`'s loop part.

    Built by the Runner from its parsed train_cfg, or, by a ported loop that subclasses one
    of these, with MMEngine's arguments (``super().__init__(runner, dataloader,
    max_iters=10)``); its own ``run()`` may then call ``run_iter`` and read
    ``dataloader_iterator`` as MMEngine's loops offer them.
    """

    by_epoch = True

    def __init__(self, runner: Any, dataloader: Any, cfg: dict | int | None = None, **kw: Any):
        super().__init__(runner, dataloader)
        if not isinstance(cfg, dict):  # MMEngine's signature: (runner, dataloader, max_*, ...)
            limit = "max_epochs" if self.by_epoch else "max_iters"
            kw = {limit: cfg, **kw} if cfg is not None else kw
            cfg = parse_train_cfg({"by_epoch": self.by_epoch, **kw})
        elif kw:
            raise TypeError(f"{type(self).__name__} takes a parsed train_cfg or keywords, not both")
        self.val_begin = cfg["val_begin"]
        self._val_interval = cfg["val_interval"]
        self.dynamic_intervals = cfg.get("dynamic_intervals") or []
        self._iterator: Any = None
        self._prepared: Any = None

    @property
    def val_interval(self) -> int:
        """The validation interval in force now: ``dynamic_intervals`` applied to the epochs
        (or iterations) done, as `engine.runner.val_schedule` decides."""
        done = self._state.epoch if self.by_epoch else self._state.iter
        return val_interval_at(self._val_interval, self.dynamic_intervals, done)

    @val_interval.setter
    def val_interval(self, value: int) -> None:
        self._val_interval = value

    @property
    def dataloader_iterator(self) -> Any:
        """MMEngine's endless iterator over the loop's loader (for a ported loop's ``run()``)."""
        if self._iterator is None:
            self._iterator = _InfiniteDataloaderIterator(self.dataloader)
        return self._iterator

    def _run_one(self, batch_idx: int, data_batch: Any) -> None:
        if self._prepared is None:  # the accumulation windows, placed once per run
            self._prepared = loops.start_counts(self._runner, self._state)
        loops.train_one_iter(self._runner, self._state, batch_idx, data_batch, self._prepared)

    @property
    def _max_iters(self) -> int | None:
        return self.max_iters

    @property
    def _max_epochs(self) -> int | None:
        return self.max_epochs

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

    def run_iter(self, idx: int, data_batch: Any) -> None:
        """One training iteration with its hooks (MMEngine's, for a ported loop's ``run()``)."""
        self._run_one(idx, data_batch)


class IterBasedTrainLoop(_TrainLoop):
    """``train_cfg=dict(type='IterBasedTrainLoop', max_iters=..., val_interval=...)``."""

    by_epoch = False

    def run_iter(self, data_batch: Any) -> None:
        """One training iteration with its hooks (MMEngine's, for a ported loop's ``run()``)."""
        self._run_one(self._state.iter, data_batch)


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

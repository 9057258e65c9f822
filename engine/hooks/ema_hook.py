"""`EMAHook`: keep an averaged copy of the weights (`engine.model.averaged_model`), evaluate
and checkpoint it.

- After every optimizer update (not every micro-batch of an accumulation window) the average
  is updated; before `begin_iter`/`begin_epoch` it just follows the weights.
- Validation and test run with the averaged weights (copied into the model, then back).
- A checkpoint's model weights are the averaged ones, the weights that were evaluated, as in
  MMEngine: periodic and best checkpoints and ``python -m engine export`` carry them. The
  live weights and the average's float32 state are saved in the hook's state, and resume
  restores both exactly.
- Names are the plain model's (never DDP's ``module.``), so a checkpoint of a launched run
  resumes or evaluates in one process.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from engine.hooks.hook import Hook
from engine.model.averaged_model import (
    BaseAveragedModel,
    ExponentialMovingAverage,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
)

logger = logging.getLogger("engine")

AVERAGED_MODELS: dict[str, type[BaseAveragedModel]] = {
    "ExponentialMovingAverage": ExponentialMovingAverage,
    "MomentumAnnealingEMA": MomentumAnnealingEMA,
    "StochasticWeightAverage": StochasticWeightAverage,
}


class EMAHook(Hook):
    """Average the weights over training and use the average for evaluation and checkpoints.

    Args:
        ema_type: ``'ExponentialMovingAverage'`` (default), ``'MomentumAnnealingEMA'``,
            ``'StochasticWeightAverage'``, or a `BaseAveragedModel` subclass.
        strict_load: when resuming, the saved average must match the model's keys exactly.
        begin_iter: start averaging once this many iterations are done (before that the
            average equals the weights).
        begin_epoch: start averaging in this epoch (1-based, as MMEngine counts it here).
        **kwargs: passed to the averaged model: ``momentum`` (weight of the newest weights,
            default 0.0002), ``update_buffers``, ``interval``, ``gamma``...

    Example:
        >>> Runner(..., custom_hooks=[dict(type='EMAHook', momentum=0.001, begin_iter=100)])
    """

    priority = "ABOVE_NORMAL"

    def __init__(
        self,
        ema_type: str | type = "ExponentialMovingAverage",
        strict_load: bool = True,
        begin_iter: int = 0,
        begin_epoch: int = 0,
        **kwargs: Any,
    ) -> None:
        cls = AVERAGED_MODELS.get(ema_type) if isinstance(ema_type, str) else ema_type
        if not (isinstance(cls, type) and issubclass(cls, BaseAveragedModel)):
            raise ValueError(
                f"EMAHook ema_type {ema_type!r} is unknown; accepted: {sorted(AVERAGED_MODELS)} "
                "or a BaseAveragedModel subclass"
            )
        if not isinstance(begin_iter, int) or not isinstance(begin_epoch, int):
            raise TypeError("EMAHook begin_iter and begin_epoch must be ints")
        if begin_iter < 0 or begin_epoch < 0:
            raise ValueError(
                f"EMAHook begin_iter/begin_epoch must be >= 0, got {begin_iter}, {begin_epoch}"
            )
        if begin_iter and begin_epoch:
            raise ValueError("EMAHook: give begin_iter or begin_epoch, not both")
        momentum = kwargs.get("momentum")
        if momentum is not None and not 0.0 < momentum < 1.0:
            raise ValueError(f"EMAHook momentum must be in (0, 1), got {momentum!r}")
        self.ema_cls = cls
        self.ema_kwargs = kwargs
        self.strict_load = strict_load
        self.begin_iter = begin_iter
        self.begin_epoch = begin_epoch
        self.ema_model: BaseAveragedModel | None = None
        self._model: nn.Module | None = None
        self._pending: dict | None = None  # a loaded state, applied once the model is bound
        self._swapped = False
        self._last_step = -1

    # -- binding to the run's model ----------------------------------------------------
    def _bind(self, runner: Any) -> BaseAveragedModel:
        if self.ema_model is None:
            raw = getattr(runner, "_raw_model", None)
            if raw is None:
                acc = getattr(runner, "accelerator", None)
                raw = acc.unwrap_model(runner.model) if acc is not None else runner.model
            self._model = raw
            self.ema_model = self.ema_cls(raw, **self.ema_kwargs)
        if self._pending is not None:
            self._restore(self._pending)
        return self.ema_model

    def _names(self) -> list[str]:
        return self.ema_model.averaged_names

    def _live(self) -> list[torch.Tensor]:
        """The model's tensors that are averaged, by plain state_dict name."""
        own = self._model.state_dict(keep_vars=True)
        return [own[k].detach() for k in self._names()]

    def _averaged(self) -> list[torch.Tensor]:
        """The averaged tensors in the model's dtypes (what evaluation uses)."""
        own = self.ema_model.module.state_dict(keep_vars=True)
        return [own[k].detach() for k in self._names()]

    def _started(self, state: Any) -> bool:
        return state.iter >= self.begin_iter and state.epoch + 1 >= self.begin_epoch

    # -- training ----------------------------------------------------------------------
    def before_train(self, runner: Any) -> None:
        state = runner.state
        if state.max_epochs is not None and self.begin_epoch > state.max_epochs:
            raise ValueError(
                f"EMAHook begin_epoch={self.begin_epoch} is beyond max_epochs={state.max_epochs}"
            )
        if state.max_iters is not None and self.begin_iter > state.max_iters:
            raise ValueError(
                f"EMAHook begin_iter={self.begin_iter} is beyond max_iters={state.max_iters}"
            )
        self._bind(runner)
        self._last_step = state.step

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        state = runner.state
        if state.step == self._last_step:
            return  # inside an accumulation window: the weights did not change
        self._last_step = state.step
        ema = self._bind(runner)
        with torch.no_grad():
            if self._started(state):
                ema.update_parameters(self._model)
            else:  # not averaging yet: the average follows the weights
                ema.copy_parameters(self._model)

    # -- evaluation with the average -----------------------------------------------------
    @torch.no_grad()
    def _swap(self) -> None:
        live, averaged = self._live(), self._averaged()
        held = [t.clone() for t in live]
        torch._foreach_copy_(live, averaged)
        torch._foreach_copy_(averaged, held)
        self._swapped = not self._swapped

    def _enter_eval(self, runner: Any) -> None:
        ema = self._bind(runner)
        if ema.num_updates == 0 and not self._swapped:
            # No update yet (evaluating loaded weights): the average is the weights.
            ema.copy_parameters(self._model)
        if not self._swapped:
            self._swap()

    def _leave_eval(self) -> None:
        if self._swapped:
            self._swap()

    def before_val_epoch(self, runner: Any) -> None:
        self._enter_eval(runner)

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._leave_eval()

    def before_test_epoch(self, runner: Any) -> None:
        self._enter_eval(runner)

    def after_test_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._leave_eval()

    # -- checkpoints -------------------------------------------------------------------
    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """Put the averaged weights in the checkpoint's model weights (``state_dict``)."""
        if self.ema_model is None or "state_dict" not in checkpoint:
            return
        if self._swapped:
            return  # the model holds the average right now
        weights = dict(checkpoint["state_dict"])
        for name, tensor in zip(self._names(), self._averaged()):
            weights[name] = tensor
        checkpoint["state_dict"] = weights

    def state_dict(self) -> dict:
        """The average's full state and the live weights (which the checkpoint's model weights
        are not), by plain names."""
        if self.ema_model is None:
            return dict(self._pending) if self._pending is not None else {}
        live = self._averaged() if self._swapped else self._live()
        average = self.ema_model.state_dict()
        if self._swapped:  # the module holds the live weights: save the average instead
            for name, tensor in zip(self._names(), self._live()):
                average[f"module.{name}"] = tensor
        return {"average": average, "live": dict(zip(self._names(), live))}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        if "average" not in state or "live" not in state:
            raise KeyError(
                f"EMAHook state has keys {sorted(state)}; expected 'average' and 'live' "
                "(saved by this engine's EMAHook)"
            )
        self._pending = state
        if self.ema_model is not None:
            self._restore(state)

    @torch.no_grad()
    def _restore(self, state: dict) -> None:
        self._pending = None
        self._leave_eval()
        self.ema_model.load_state_dict(state["average"], strict=self.strict_load)
        live = state["live"]
        missing = [k for k in self._names() if k not in live]
        if missing:
            raise KeyError(f"EMAHook state lacks the live weights {missing[:5]}")
        own = self._model.state_dict(keep_vars=True)
        for name in self._names():
            own[name].detach().copy_(live[name])

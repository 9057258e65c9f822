"""`EMAHook`: keep an averaged copy of the weights (`engine.model.averaged_model`), evaluate
and checkpoint it.

- After every optimizer update (not every micro-batch of an accumulation window) the average
  is updated; before `begin_iter`/`begin_epoch` it just follows the weights.
- Validation and test run with the averaged weights (copied into the model, then back).
- A checkpoint's model weights are the averaged ones, the weights that were evaluated, as in
  MMEngine: periodic and best checkpoints and ``python -m engine export`` carry them. The
  live weights are kept beside them in ``checkpoint['ema_state_dict']`` (MMEngine's layout:
  the averaged model's state with its ``module.*`` entries swapped for the live weights; the
  float32 average and ``steps`` with them), and resume restores both exactly.
- Names are the plain model's (never DDP's ``module.``), so a checkpoint of a launched run
  resumes or evaluates in one process.
- A sharded model (``model_wrapper='fsdp2'``): the average holds DTensors sharded like the
  model, each process averages and swaps its own shards, and the checkpoint keeps the same
  layout in its DCP shards (`engine.checkpoint.sharded`): resume is exact, and reshards.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch
from torch import nn

from engine.checkpoint.sharded import ShardedEntry
from engine.hooks.hook import Hook
from engine.model.averaged_model import (
    BaseAveragedModel,
    ExponentialMovingAverage,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
)
from engine.model.sharded_copy import local_shards
from engine.optim.optim_wrapper_dict import members

logger = logging.getLogger("engine")

AVERAGED_MODELS: dict[str, type[BaseAveragedModel]] = {
    "ExponentialMovingAverage": ExponentialMovingAverage,
    "MomentumAnnealingEMA": MomentumAnnealingEMA,
    "StochasticWeightAverage": StochasticWeightAverage,
}


class EMAHookConfigError(ValueError, AssertionError):
    """A bad EMAHook argument (an `AssertionError` too, as MMEngine's checks are)."""


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

    With ``accumulative_counts > 1`` the average is updated once per optimizer update, not
    once per micro-batch (MMEngine updates it on every iteration, folding the same weights
    in several times).

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
            raise EMAHookConfigError(
                f"EMAHook ema_type {ema_type!r} is unknown; accepted: {sorted(AVERAGED_MODELS)} "
                "or a BaseAveragedModel subclass"
            )
        if not isinstance(begin_iter, int) or begin_iter < 0:
            raise EMAHookConfigError(
                f"EMAHook `begin_iter` must be an int >= 0, got {begin_iter!r}"
            )
        if not isinstance(begin_epoch, int) or begin_epoch < 0:
            raise EMAHookConfigError(
                f"EMAHook `begin_epoch` must be an int >= 0, got {begin_epoch!r}"
            )
        if begin_iter and begin_epoch:
            raise EMAHookConfigError(
                "EMAHook: `begin_iter` and `begin_epoch` cannot both be set; give one"
            )
        try:  # a misspelt argument fails here, not at the first iteration
            inspect.signature(cls).bind(None, **kwargs)
        except TypeError as err:
            raise TypeError(
                f"EMAHook passes its other arguments to {cls.__name__}, which rejected them: {err}"
            ) from None
        momentum = kwargs.get("momentum")
        if momentum is not None and not 0.0 < momentum < 1.0:
            raise EMAHookConfigError(f"EMAHook momentum must be in (0, 1), got {momentum!r}")
        self.ema_cls = cls
        self.ema_kwargs = kwargs
        self.strict_load = strict_load
        self.begin_iter = begin_iter
        self.begin_epoch = begin_epoch
        self.ema_model: BaseAveragedModel | None = None
        self.src_model: nn.Module | None = None
        self._swapped = False  # the model holds the average (during validation/test)
        self._last_step: int | None = None

    # -- binding to the run's model ----------------------------------------------------
    def _bind(self, runner: Any) -> BaseAveragedModel:
        if self.ema_model is None:
            raw = getattr(runner, "_raw_model", None)
            if raw is None:
                acc = getattr(runner, "accelerator", None)
                raw = acc.unwrap_model(runner.model) if acc is not None else runner.model
            self.src_model = raw
            self.ema_model = self.ema_cls(raw, **self.ema_kwargs)
        return self.ema_model

    def _names(self) -> list[str]:
        return self.ema_model.averaged_names

    def _live(self) -> list[torch.Tensor]:
        """The model's tensors that are averaged, by plain state_dict name."""
        own = self.src_model.state_dict(keep_vars=True)
        return [own[k].detach() for k in self._names()]

    def _averaged(self) -> list[torch.Tensor]:
        """The averaged tensors in the model's dtypes (what evaluation uses)."""
        own = self.ema_model.module.state_dict(keep_vars=True)
        return [own[k].detach() for k in self._names()]

    def _started(self, state: Any) -> bool:
        return state.iter >= self.begin_iter and state.epoch + 1 >= self.begin_epoch

    # -- training ----------------------------------------------------------------------
    def before_run(self, runner: Any) -> None:
        self._bind(runner)

    def before_train(self, runner: Any) -> None:
        state = runner.state
        if state.max_epochs is not None and self.begin_epoch > state.max_epochs:
            raise EMAHookConfigError(
                f"EMAHook begin_epoch={self.begin_epoch} is beyond max_epochs={state.max_epochs}: "
                "the average would never start (self.begin_epoch must be <= max_epochs)"
            )
        if state.max_iters is not None and self.begin_iter > state.max_iters:
            raise EMAHookConfigError(
                f"EMAHook begin_iter={self.begin_iter} is beyond max_iters={state.max_iters}: "
                "the average would never start (self.begin_iter must be <= max_iters)"
            )
        self._bind(runner)
        self._last_step = state.step

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        state = runner.state
        previous, self._last_step = self._last_step, state.step
        if previous == state.step and _accumulates(runner):
            return  # inside an accumulation window: the weights did not change
        ema = self._bind(runner)
        if self._started(state):
            ema.update_parameters(self.src_model)
        else:  # not averaging yet: the average follows the weights
            ema.copy_parameters(self.src_model)

    # -- evaluation with the average -----------------------------------------------------
    @torch.no_grad()
    def _swap(self) -> None:
        """Exchange the model's averaged tensors with the average's (MMEngine swaps on every
        call of the four evaluation events; the loops pair them)."""
        live, averaged = local_shards(self._live()), local_shards(self._averaged())
        held = [t.clone() for t in live]
        torch._foreach_copy_(live, averaged)
        torch._foreach_copy_(averaged, held)
        self._swapped = not self._swapped

    def _enter_eval(self, runner: Any) -> None:
        ema = self._bind(runner)
        if ema.num_updates == 0 and not self._swapped:
            # Nothing averaged yet (evaluating loaded weights): the average is the weights.
            ema.copy_parameters(self.src_model)
        self._swap()

    def before_val_epoch(self, runner: Any) -> None:
        self._enter_eval(runner)

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._bind(runner)
        self._swap()

    def before_test_epoch(self, runner: Any) -> None:
        self._enter_eval(runner)

    def after_test_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._bind(runner)
        self._swap()

    # -- checkpoints -------------------------------------------------------------------
    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """``checkpoint['state_dict']`` gets the averaged weights; ``checkpoint['ema_state_dict']``
        the averaged model's state with the live weights in its ``module.*`` entries."""
        ema = self._bind(runner)
        saved = ema.state_dict()
        weights = checkpoint.get("state_dict")
        if weights is None:
            weights = self.src_model.state_dict()
        weights = dict(weights)
        if not self._swapped:  # (while swapped, the model already holds the average)
            for name in self._names():
                weights[name], saved[f"module.{name}"] = saved[f"module.{name}"], weights[name]
        checkpoint["state_dict"] = weights
        checkpoint["ema_state_dict"] = saved

    @torch.no_grad()
    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """On resume, put the live weights back in the model and the average in the hook.

        engine has loaded the checkpoint's model weights (the average) into the model
        already; a checkpoint dict that carries ``state_dict`` (MMEngine's) is swapped back
        in place, for the caller to load, as MMEngine does.
        """
        ema = self._bind(runner)
        resuming = bool(getattr(runner, "_resume", True))
        saved = checkpoint.get("ema_state_dict")
        weights = checkpoint.get("state_dict")
        if isinstance(saved, ShardedEntry):  # a sharded checkpoint: read into our shardings
            saved = saved.load(ema.state_dict()) if resuming else None
        if saved is not None and resuming:
            saved = dict(saved)
            own = self.src_model.state_dict(keep_vars=True)
            for name in self._names():
                key = f"module.{name}"
                if key not in saved:
                    continue  # strict_load reports it below
                if weights is not None:
                    saved[key], weights[name] = weights[name], saved[key]
                else:
                    live = saved[key]
                    saved[key] = own[name].detach().clone()
                    local_shards([own[name].detach()])[0].copy_(local_shards([live])[0])
            ema.load_state_dict(saved, strict=self.strict_load)
            return
        if resuming:
            (getattr(runner, "logger", None) or logger).warning(  # the run's logger if any
                "There is no `ema_state_dict` in the checkpoint: EMAHook starts its average "
                "from the loaded weights"
            )
        if weights is not None:
            ema.module.load_state_dict(dict(weights), strict=self.strict_load)
            ema.copy_parameters(ema.module)
        else:
            ema.copy_parameters(self.src_model)


def _accumulates(runner: Any) -> bool:
    """Whether some optimizer wrapper accumulates gradients over several iterations."""
    ow = getattr(runner, "optim_wrapper", None)
    return ow is not None and any(getattr(w, "accumulative_counts", 1) > 1 for w in members(ow))

"""`EMAHook`: an exponential moving average of the weights, used for validation."""

from __future__ import annotations

from typing import Any

import torch

from engine.hooks.hook import Hook


class EMAHook(Hook):
    """Keep ``ema = ema * (1 - momentum) + weights * momentum`` after every optimizer
    update (MMEngine's convention: a small ``momentum`` averages over many updates), and
    evaluate with the averaged weights (swapped in for validation/test, then back).

    The average lives on the model's device and is updated with one fused ``lerp`` per
    update: no host reads. Its tensors are saved in checkpoints (hook state) and resume.

    Args:
        momentum: weight of the newest weights, in (0, 1).
        update_buffers: also average floating-point buffers (BatchNorm statistics);
            otherwise buffers are copied.
        begin_iter / begin_epoch: start averaging from this iteration / epoch (the
            average tracks the weights exactly until then).

    Example:
        >>> Runner(..., custom_hooks=[EMAHook(momentum=0.001)])
    """

    priority = "ABOVE_NORMAL"

    def __init__(
        self,
        momentum: float = 0.0002,
        update_buffers: bool = False,
        begin_iter: int = 0,
        begin_epoch: int = 0,
    ) -> None:
        if not 0.0 < momentum < 1.0:
            raise ValueError(f"EMAHook momentum must be in (0, 1), got {momentum!r}")
        if begin_iter < 0 or begin_epoch < 0:
            raise ValueError(
                f"EMAHook begin_iter/begin_epoch must be >= 0, got {begin_iter}, {begin_epoch}"
            )
        self.momentum = momentum
        self.update_buffers = update_buffers
        self.begin_iter = begin_iter
        self.begin_epoch = begin_epoch
        self._names: list[str] = []
        self._live: list[torch.Tensor] = []
        self.ema: list[torch.Tensor] = []
        self._loaded: dict | None = None
        self._last_step = -1

    def _bind(self, runner: Any) -> None:
        if self._live:
            return
        model = (
            runner.accelerator.unwrap_model(runner.model)
            if runner.accelerator is not None
            else runner.model
        )
        named = [(n, p) for n, p in model.named_parameters()]
        named += [(n, b) for n, b in model.named_buffers() if b.is_floating_point()]
        self._names = [n for n, _ in named]
        self._live = [t.data for _, t in named]
        self._n_params = sum(1 for _ in model.parameters())
        self.ema = [t.detach().clone() for t in self._live]
        if self._loaded is not None:
            self._restore(self._loaded)

    def before_train(self, runner: Any) -> None:
        self._bind(runner)
        self._last_step = runner.state.step

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        state = runner.state
        if state.step == self._last_step:
            return  # inside an accumulation window: the weights did not change
        self._last_step = state.step
        averaged = self.ema if self.update_buffers else self.ema[: self._n_params]
        live = self._live if self.update_buffers else self._live[: self._n_params]
        if state.iter <= self.begin_iter or state.epoch < self.begin_epoch:
            torch._foreach_copy_(averaged, live)
        else:
            torch._foreach_lerp_(averaged, live, self.momentum)
        if not self.update_buffers:
            torch._foreach_copy_(self.ema[self._n_params :], self._live[self._n_params :])

    def _swap(self) -> None:
        with torch.no_grad():
            for live, averaged in zip(self._live, self.ema):
                held = live.clone()
                live.copy_(averaged)
                averaged.copy_(held)

    def before_val_epoch(self, runner: Any) -> None:
        self._bind(runner)
        self._swap()

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._swap()

    def before_test_epoch(self, runner: Any) -> None:
        self._bind(runner)
        self._swap()

    def after_test_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self._swap()

    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "ema": dict(zip(self._names, self.ema))}

    def load_state_dict(self, state: dict) -> None:
        if self._live:
            self._restore(state)
        else:
            self._loaded = state  # the model is bound at before_train

    def _restore(self, state: dict) -> None:
        saved = state["ema"]
        missing = [n for n in self._names if n not in saved]
        if missing:
            raise KeyError(
                f"EMAHook state lacks {missing[:5]}{'...' if len(missing) > 5 else ''}: was it saved from another model?"
            )
        for name, averaged in zip(self._names, self.ema):
            averaged.copy_(saved[name])
        self._loaded = None

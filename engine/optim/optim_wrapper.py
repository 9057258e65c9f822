"""`OptimWrapper`: parameter updates on Accelerate's idiom.

The wrapper is a thin layer over ``accelerator.backward``, ``no_sync``/``autocast``,
``clip_grad_norm_``, ``step`` and ``zero_grad``. It corrects one thing Accelerate gets
wrong for us: ``accelerator.backward`` always divides the loss by a fixed
``gradient_accumulation_steps``, while an exact last window that holds ``r`` micro-batches
must divide by ``r``. Elsewhere: the windows (`engine.optim.accumulation`), param groups,
lr/momentum views and state (`engine.optim.base_optim_wrapper`), clipping (`grad_clip`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from engine.logging import MessageHub
from engine.model.fsdp2 import set_gradient_sync
from engine.model.wrappers import no_sync
from engine.optim.accumulation import AccumulationWindows, apply_partial_window, warn_placement
from engine.optim.base_optim_wrapper import BaseOptimWrapper
from engine.optim.grad_clip import clip_gradients, grad_norm, parse_clip_grad
from engine.optim.sharded_clip import deepspeed_grad_norm
from engine.optim.token_weighting import ItemWeighting

_NO_GRAD_NORM = None


def _window_view(name: str, doc: str) -> property:
    """An attribute of the wrapper that reads and writes ``wrapper.windows.<name>``."""
    return property(
        lambda self: getattr(self.windows, name),
        lambda self, value: setattr(self.windows, name, value),
        doc=doc,
    )


class OptimWrapper(BaseOptimWrapper):
    """Backward, accumulation, clipping and stepping for one optimizer.

    Accumulation is exact: every update applies the mean gradient of the micro-batches
    in its window. Windows follow the global iteration count set by
    `initialize_count_status`; when training ends at ``max_counts`` and
    ``max_counts % accumulative_counts == r != 0``, the last window's losses are divided
    by ``r``. Non-final micro-batches run under ``no_sync`` in distributed runs.

    Args:
        optimizer: a torch optimizer, or one prepared by ``accelerator.prepare``.
        accelerator: the run's ``Accelerator``. ``None`` works in a plain process:
            ``loss.backward()`` and torch's clipping, no autocast.
        accumulative_counts: micro-batches per optimizer update.
        clip_grad: ``dict(max_norm=..., norm_type=2)`` or ``dict(type='value', clip_value=...)``;
            applied on update steps only.

    Example:
        >>> ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
        >>> with ow.optim_context(model):
        ...     loss = model(x).sum()
        >>> ow.update_params(loss)
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        accelerator: Any = None,
        accumulative_counts: int = 1,
        clip_grad: dict | None = None,
    ) -> None:
        super().__init__(optimizer)
        self.windows = AccumulationWindows(accumulative_counts)
        self.clip_grad = clip_grad
        self._clip = parse_clip_grad(clip_grad)
        self.last_grad_norm: torch.Tensor | None = _NO_GRAD_NORM
        self.accelerator = None
        self._accelerate_step_needed = False
        self._inner_optimizer = optimizer
        self._multi_process = False
        self._message_hub: MessageHub | None = None
        self._deepspeed = False  # DeepSpeed clips and steps inside backward
        self._items = ItemWeighting()  # used when update_params gets num_items
        if accelerator is not None:
            self.attach(accelerator)

    # -- set-up --------------------------------------------------------------
    def attach(self, accelerator: Any, optimizer: Any = None) -> None:
        """Use `accelerator` from now on (and `optimizer`, the prepared copy, when given)."""
        if optimizer is not None:
            self.optimizer = optimizer
        self.accelerator = accelerator
        from accelerate.utils import DistributedType

        # AcceleratedOptimizer.step adds work on every call (an uncached import probe for
        # LOMO, XLA checks), and Accelerator.backward divides the loss by its step count
        # (one more autograd op, even when it is 1). They are needed only for a loss
        # scaler, XLA, DeepSpeed, Megatron-LM and LOMO; elsewhere we step the inner
        # optimizer and call loss.backward() directly, which is what they would do.
        inner = getattr(self.optimizer, "optimizer", None)
        self._accelerate_step_needed = (
            inner is None
            or accelerator.scaler is not None
            or accelerator.distributed_type
            in (DistributedType.XLA, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM)
            or type(inner).__name__ in ("Lomo", "AdaLomo")
        )
        self._inner_optimizer = self.optimizer if inner is None else inner
        self._multi_process = accelerator.num_processes > 1
        self._deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """Place the accumulation window: ``init_counts`` micro-batches done of ``max_counts``.

        Called by the loops from `TrainState` at the start and on resume; warns (to the
        current `MMLogger`, as MMEngine) about a resume inside a window and about BatchNorm.
        """
        warn_placement(model, int(init_counts), self.windows.size)
        self.windows.place(init_counts, max_counts)

    # -- the update ----------------------------------------------------------
    def update_params(
        self,
        loss: torch.Tensor,
        step_kwargs: dict | None = None,
        zero_kwargs: dict | None = None,
        *,
        num_items: Any = None,
    ) -> None:
        """Scale ``loss`` for its window, backward, and on the window's last micro-batch
        clip, step and zero the gradients. ``num_items``: how many items (tokens) ``loss``
        averages; the update is then the mean over all the window's items on every process
        (`engine.optim.token_weighting`)."""
        self.last_grad_norm = _NO_GRAD_NORM
        if not self._items.open and (
            num_items is None or (self.accumulative_counts == 1 and not self._multi_process)
        ):  # a one-batch window on one process: its mean loss already weights items alike
            self.backward(self.scale_loss(loss))
        else:
            self.backward(self._items.weight(loss, num_items, self.accelerator))
        if self.should_update():
            if self._items.open:
                self._items.finish(self.optimizer, self.accelerator)
            self.step(**(step_kwargs or {}))
            self.zero_grad(**(zero_kwargs or {}))

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Divide by the size of the window this micro-batch belongs to."""
        windows = self.windows
        return loss if windows.size == 1 else loss / windows.divisor(windows.count)

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Backward through Accelerate (loss scaler, DeepSpeed) and count the micro-batch."""
        acc = self.accelerator
        if acc is None or not self._accelerate_step_needed:
            loss.backward(**kwargs)
        else:
            if acc.scaler is not None and self._inner_optimizer is self.optimizer:
                # fp16 with a raw optimizer (OptimWrapper(optimizer, accelerator)): the scaled
                # gradients must be unscaled and overflows skipped, which only Accelerate's
                # AcceleratedOptimizer does. (The Runner has prepared it by now.)
                self.attach(acc, acc.prepare_optimizer(self.optimizer))
            if self._deepspeed:  # it steps inside this backward at a window's end, whether
                # or not the train_step used optim_context: tell it which micro-batch this is
                acc.gradient_state._set_sync_gradients(self.should_sync())
            steps = acc.gradient_accumulation_steps
            # Accelerate divides by its own fixed step count; `scale_loss` has already
            # divided by the true window size, so undo Accelerate's division.
            acc.backward(loss * steps if steps != 1 else loss, **kwargs)
        self.windows.count += 1

    def step(self, **kwargs: Any) -> None:
        """Clip (if configured) and step the optimizer."""
        if self._deepspeed:  # DeepSpeed clipped and stepped in backward (its gradient_clipping,
            # engine.runner.deepspeed_config); Accelerate's prepared optimizer's step is a no-op
            self.last_grad_norm = deepspeed_grad_norm(self.accelerator)
            self.accelerator.gradient_state._set_sync_gradients(True)
            self.optimizer.step(**kwargs)
            return
        if self._clip is not None:
            self.last_grad_norm = clip_gradients(self._clip, self.optimizer, self.accelerator)
        elif self._plain_gradients():
            # Logged without clipping too: one fused norm on the device, read at the log line.
            self.last_grad_norm = grad_norm(self.optimizer)
        acc = self.accelerator
        if acc is None or not self._accelerate_step_needed:
            self._inner_optimizer.step(**kwargs)
        else:
            acc.gradient_state._set_sync_gradients(True)
            self.optimizer.step(**kwargs)

    def _plain_gradients(self) -> bool:
        """Whether the gradients are whole and unscaled here: not fp16's scaled ones, not
        sharded (FSDP, FSDP2's DTensors, DeepSpeed), not XLA's lazy tensors. Decided once."""
        plain = getattr(self, "_plain", None)
        if plain is None:
            acc = self.accelerator
            kind = str(getattr(getattr(acc, "distributed_type", None), "value", "NO"))
            plain = acc is None or (
                str(getattr(acc, "mixed_precision", "no")) != "fp16"
                and kind not in ("FSDP", "DEEPSPEED", "XLA")
            )
            params = (p for group in self.optimizer.param_groups for p in group.get("params", ()))
            plain = plain and not any(type(p).__name__ == "DTensor" for p in params)
            self._plain = plain
        return plain

    def zero_grad(self, **kwargs: Any) -> None:
        kwargs.setdefault("set_to_none", True)
        if self.accelerator is None or not self._accelerate_step_needed:
            self._inner_optimizer.zero_grad(**kwargs)
        else:
            self.accelerator.gradient_state._set_sync_gradients(True)
            self.optimizer.zero_grad(**kwargs)

    # -- accumulation position ----------------------------------------------
    def should_update(self) -> bool:
        """True after the last micro-batch of a window (called after `backward`)."""
        return self.windows.ends_window()

    def should_sync(self) -> bool:
        """True when the next micro-batch ends a window, so its gradients must be reduced."""
        return self.windows.next_ends_window()

    def apply_partial_window(self) -> bool:
        """At the end of a run, apply an open window as an update of its own
        (`engine.optim.accumulation.apply_partial_window`); True if one was applied."""
        return apply_partial_window(self)

    def optim_context(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Autocast (from the Accelerator) and, on micro-batches that do not end a window,
        ``no_sync`` so distributed runs reduce gradients once per window."""
        acc = self.accelerator
        sync = self.windows.size == 1 or self.windows.next_ends_window()
        if acc is None:  # a hand-made DDP: its own no_sync, as MMEngine
            if not sync and callable(getattr(model, "no_sync", None)):
                return model.no_sync()
            return _NULL_CONTEXT
        acc.gradient_state._set_sync_gradients(sync)
        if self._multi_process:
            set_gradient_sync(model, sync)
        if sync or not self._multi_process:
            # Accelerate's autocast is a no-op unless native AMP is on: skip building it.
            return acc.autocast() if acc.native_amp else _NULL_CONTEXT
        return _autocast_no_sync(acc, model)

    # -- MMEngine's names ------------------------------------------------------
    @property
    def message_hub(self) -> MessageHub:
        """The current `MessageHub` (MMEngine's attribute), unless one was assigned."""
        return self._message_hub or MessageHub.get_current_instance()

    @message_hub.setter
    def message_hub(self, hub: MessageHub) -> None:
        self._message_hub = hub

    @property
    def clip_grad_kwargs(self) -> dict | None:
        """The ``clip_grad`` dict given (MMEngine's name)."""
        return self.clip_grad

    # The accumulation position's names, MMEngine's private ones included (its tests and
    # ported subclasses read and set them): views of `windows`.
    accumulative_counts = _accumulative_counts = _window_view("size", "Micro-batches per update.")
    inner_count = _inner_count = _window_view(
        "count",
        "Micro-batches back-propagated since the run's start (restored on resume); for a "
        "wrapper used every iteration, the iteration number (MMEngine's name).",
    )
    max_counts = _max_counts = _window_view("max_counts", "Micro-batches of the run (-1: unknown).")
    _remainder_counts = _window_view("remainder", "max_counts % accumulative_counts; -1: unplaced.")

    # -- state -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """`BaseOptimWrapper.state_dict` (the optimizer's) and, for fp16, the loss scaler's
        under ``'loss_scaler'``, as MMEngine's AmpOptimWrapper. The accumulation position
        is the run's (`TrainState.windows`), not the optimizer's."""
        state = super().state_dict()
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None:
            state = {**state, "loss_scaler": scaler.state_dict()}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Load what `state_dict` returned (a plain optimizer state dict works too)."""
        state = dict(state_dict)
        state.pop("accumulation", None)  # older engine checkpoints kept the position here
        scaler_state = state.pop("loss_scaler", None)
        super().load_state_dict(state)
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler_state is not None and scaler is not None:
            scaler.load_state_dict(scaler_state)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(optimizer={type(self._inner_optimizer_or_self()).__name__}, "
            f"accumulative_counts={self.accumulative_counts}, clip_grad={self.clip_grad})"
        )

    def _inner_optimizer_or_self(self) -> Any:
        return getattr(self.optimizer, "optimizer", self.optimizer)


_NULL_CONTEXT = contextlib.nullcontext()  # stateless: one instance serves every call


@contextlib.contextmanager
def _autocast_no_sync(accelerator: Any, model: nn.Module) -> Iterator[None]:
    # The wrappers that reduce `model`'s gradients: the DDP around a BaseModel
    # (whose train_step passes itself), or each wrapped child ('separate').
    with accelerator.autocast(), no_sync(accelerator, model):
        yield

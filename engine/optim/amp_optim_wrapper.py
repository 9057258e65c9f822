"""`AmpOptimWrapper`: MMEngine's mixed-precision wrapper, mapped onto Accelerate's precision.

In a Runner, ``dict(type='AmpOptimWrapper', dtype='bfloat16')`` sets the Accelerator's
``mixed_precision`` (see `engine.optim.builder.amp_precision`) and Accelerate provides the
autocast region and, for fp16, the loss scaler. Built by hand without an Accelerator, or
attached to one that runs in full precision, the wrapper does what MMEngine's does itself:
``torch.autocast`` in `optim_context` and, for float16, a ``torch.amp.GradScaler``.

Example:
    >>> ow = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
    ...                      dtype='bfloat16')
    >>> with ow.optim_context(model):
    ...     loss = model(x).sum()
    >>> ow.update_params(loss)
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from engine.optim.grad_clip import clip_gradients
from engine.optim.optim_wrapper import OptimWrapper

_DTYPES = {
    None: torch.float16, "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    torch.float16: torch.float16, torch.bfloat16: torch.bfloat16,
}  # fmt: skip
PRECISION = {torch.float16: "fp16", torch.bfloat16: "bf16"}


def parse_loss_scale(loss_scale: Any) -> dict | None:
    """``'dynamic'`` -> ``{}`` (GradScaler's defaults), a float -> a fixed scale, a dict ->
    GradScaler's arguments; anything else is a TypeError naming what is accepted."""
    if loss_scale == "dynamic":
        return {}
    if isinstance(loss_scale, bool) or not isinstance(loss_scale, int | float | dict):
        raise TypeError(
            "loss_scale must be of type float, dict, or 'dynamic', "
            f"got {loss_scale!r} ({type(loss_scale).__name__})"
        )
    if isinstance(loss_scale, dict):
        return dict(loss_scale)
    # A fixed scale: never grows, never shrinks (MMEngine passes it to update()).
    return {"init_scale": float(loss_scale), "growth_interval": 2**31 - 1, "fixed": True}


class AmpOptimWrapper(OptimWrapper):
    """An `OptimWrapper` that trains in float16 or bfloat16 (MMEngine's signature).

    Args:
        loss_scale: ``'dynamic'``, a fixed float, or a dict of ``GradScaler`` arguments
            (``init_scale``, ``growth_factor``...). Only float16 uses a scaler.
        dtype: ``'float16'`` (default) or ``'bfloat16'`` (or the torch dtype).
        use_fsdp: accepted for MMEngine configs; Accelerate's FSDP brings its own scaler.
        **kwargs: `OptimWrapper`'s arguments (``optimizer``, ``accumulative_counts``...).
    """

    def __init__(
        self, loss_scale: Any = "dynamic", dtype: Any = None, use_fsdp: bool = False, **kwargs: Any
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(
                f"AmpOptimWrapper dtype {dtype!r} is unknown; accepted: 'float16', 'bfloat16'"
            )
        scaler_args = parse_loss_scale(loss_scale)
        self.cast_dtype = _DTYPES[dtype]
        self.use_fsdp = use_fsdp
        fixed = scaler_args.pop("fixed", False)
        self._scale_update_param = scaler_args["init_scale"] if fixed else None
        self._scaler_args = scaler_args
        self.loss_scaler = None
        super().__init__(**kwargs)
        if self.accelerator is None:
            self._own_amp()

    @property
    def precision(self) -> str:
        """The Accelerate ``mixed_precision`` this wrapper stands for."""
        return PRECISION[self.cast_dtype]

    def _own_amp(self) -> None:
        """Autocast and (float16) loss scaling done here, as MMEngine does."""
        self.loss_scaler = None
        if self.cast_dtype is torch.float16:
            device = _device_of(self.param_groups)
            self.loss_scaler = torch.amp.GradScaler(device, **self._scaler_args)

    def attach(self, accelerator: Any, optimizer: Any = None) -> None:
        super().attach(accelerator, optimizer)
        if accelerator.mixed_precision in ("fp16", "bf16", "fp8"):
            self.loss_scaler = None  # Accelerate's autocast and scaler serve
        else:
            self._own_amp()

    def _own(self) -> bool:
        acc = self.accelerator
        return acc is None or acc.mixed_precision not in ("fp16", "bf16", "fp8")

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        if self._own() and self.loss_scaler is not None:
            self.loss_scaler.scale(loss).backward(**kwargs)
            self._inner_count += 1
        else:
            super().backward(loss, **kwargs)

    def step(self, **kwargs: Any) -> None:
        if not (self._own() and self.loss_scaler is not None):
            super().step(**kwargs)
            return
        if self._clip is not None:
            self.loss_scaler.unscale_(self._inner_optimizer)  # clip the true gradients
            self.last_grad_norm = clip_gradients(self._clip, self._inner_optimizer, None)
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._scale_update_param)

    def optim_context(self, model: nn.Module) -> contextlib.AbstractContextManager:
        context = super().optim_context(model)
        if not self._own():
            return context
        stack = contextlib.ExitStack()
        stack.enter_context(context)
        device = _device_of(self.param_groups)
        stack.enter_context(torch.autocast(device_type=device, dtype=self.cast_dtype))
        return stack

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self._own() and self.loss_scaler is not None:
            state = {**state, "loss_scaler": self.loss_scaler.state_dict()}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        scaler_state = state.get("loss_scaler") if self._own() else None
        if scaler_state is not None:
            state.pop("loss_scaler")
            if self.loss_scaler is not None:
                self.loss_scaler.load_state_dict(scaler_state)
        super().load_state_dict(state)


def _device_of(param_groups: list[dict]) -> str:
    for group in param_groups:
        for p in group.get("params", ()):
            return p.device.type
    return "cuda" if torch.cuda.is_available() else "cpu"

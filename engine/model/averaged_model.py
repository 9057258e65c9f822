"""Averaged copies of a model: `ExponentialMovingAverage`, `MomentumAnnealingEMA`,
`StochasticWeightAverage` (MMEngine's names and arguments).

The average is kept in float32 even when the model is in bf16/fp16: a bf16 average moved by
``momentum * (w - avg)`` would round the increment away and never move. The averaged module
keeps the model's dtypes (so it runs like the model); low-precision tensors get a float32
shadow that is the average's true value, saved in ``state_dict`` for exact resume.

Parameter names never carry a distributed wrapper's ``module.``: the copy is of the plain
model (DDP children are copied as their inner module), and sources are matched by the
model's ``state_dict`` names, which engine keeps plain (`engine.model.wrappers`).

A sharded model (FSDP2's DTensor parameters) is averaged shard by shard: the copy holds
DTensors sharded like the model's (`engine.model.sharded_copy`), each process updates its
own shards, and nothing is communicated. Such an average has no forward of its own;
`EMAHook` evaluates it by swapping it into the model.

Example:
    >>> ema = ExponentialMovingAverage(model, momentum=0.001)
    >>> for batch in loader:
    ...     train_step(model, batch); ema.update_parameters(model)
    >>> ema(batch)   # evaluate the averaged weights
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import Tensor, nn

from engine.logging.mm_logger import current_logger
from engine.model.base_module import is_model_wrapper
from engine.model.sharded_copy import has_dtensors, local_shards, sharded_copy

logger = logging.getLogger("engine")

__all__ = [
    "BaseAveragedModel",
    "ExponentialMovingAverage",
    "MomentumAnnealingEMA",
    "StochasticWeightAverage",
    "plain_copy",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class AveragedModelConfigError(ValueError, AssertionError):
    """A bad averaging argument (an `AssertionError` too, as MMEngine's checks are)."""


def plain_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` in which every distributed wrapper (DDP, FSDP) is replaced by
    a copy of the module it wraps, so the copy has the user's structure and names. A sharded
    model (DTensor parameters) gets `sharded_copy`: its tensors, sharded alike, no forward."""
    if has_dtensors(model):  # FSDP2 refuses deepcopy; the shards are what an average needs
        return sharded_copy(model)
    memo: dict[int, Any] = {}
    wrappers = [m for m in model.modules() if is_model_wrapper(m)]
    for wrapper in wrappers[::-1]:  # innermost first, so nested wrappers resolve
        memo[id(wrapper)] = copy.deepcopy(wrapper.module, memo)
    if id(model) in memo:
        return memo[id(model)]
    return copy.deepcopy(model, memo)


def _plain_names(model: nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """`state` with wrappers' ``module.`` segments removed (engine's own wrapping keeps plain
    names already; a model wrapped by hand in torch's DDP does not)."""
    inner = [f"{n}.module." if n else "module." for n, m in model.named_modules()
             if is_model_wrapper(m)]  # fmt: skip
    if not inner:
        return state
    renamed = {}
    for key, value in state.items():
        for prefix in sorted(inner, key=len, reverse=True):
            if key.startswith(prefix):
                key = prefix[: -len("module.")] + key[len(prefix) :]
        renamed[key] = value
    return renamed


class BaseAveragedModel(nn.Module):
    """A copy of a model whose weights are an average of the model's over training.

    Subclasses define `avg_func` (one tensor, in place), or override `_average` to update
    all tensors at once. The first `update_parameters` copies the model; later calls average
    every `interval`-th time.

    Args:
        model: the model to average (a wrapped model is copied as its inner module).
        interval: average on every `interval`-th call (others are skipped).
        device: where the average lives (default: where the model is).
        update_buffers: average floating buffers (BatchNorm statistics) too; otherwise the
            buffers are copied from the model on every update.

    Attributes:
        steps: a long tensor, the number of `update_parameters` calls so far.
    """

    def __init__(
        self,
        model: nn.Module,
        interval: int = 1,
        device: torch.device | str | None = None,
        update_buffers: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(interval, int) or interval < 1:
            raise AveragedModelConfigError(f"interval must be an int >= 1, got {interval!r}")
        self.module = plain_copy(model).requires_grad_(False)
        if device is not None:
            self.module = self.module.to(device)
        self.interval = interval
        self.update_buffers = update_buffers
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long, device=device))
        own = self.module.state_dict(keep_vars=True)
        params = {id(p) for p in self.module.parameters()}
        # Names, not tensors: .to()/.cuda() replace buffer tensors, so they are looked up
        # again at every update (a dict walk, no device work).
        self._avg_names = [k for k, v in own.items() if update_buffers or id(v) in params]
        self._buffer_names = [] if update_buffers else [k for k in own if k not in self._avg_names]
        self.fp32_average = nn.Module()  # float32 shadows of low-precision averaged tensors
        for name in self._avg_names:
            if own[name].dtype in _LOW_PRECISION:
                shadow = own[name].detach().float()
                self.fp32_average.register_buffer(name.replace(".", "__"), shadow)
        self._host_steps: int | None = 0  # a host copy of `steps`: no device read per update
        self.register_load_state_dict_post_hook(_forget_host_steps)

    @property
    def avg_parameters(self) -> dict[str, Tensor]:
        """The averaged tensors of `module` by state_dict name (parameters, and buffers with
        ``update_buffers``), in the module's dtype."""
        own = self.module.state_dict(keep_vars=True)
        return {k: own[k] for k in self._avg_names}

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """Update `averaged_param` in place from `source_param` at update number `steps`."""
        raise NotImplementedError(f"{type(self).__name__} must implement avg_func")

    def _average(self, averaged: list[Tensor], sources: list[Tensor], steps: int) -> None:
        for avg, src in zip(averaged, sources):
            self.avg_func(avg, src, steps)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the averaged module."""
        return self.module(*args, **kwargs)

    # -- updating ------------------------------------------------------------------------
    @property
    def averaged_names(self) -> list[str]:
        """The state_dict names of the averaged tensors (plain, wrapper-free)."""
        return list(self._avg_names)

    @property
    def num_updates(self) -> int:
        """`steps` as a Python int, kept on the host (read from the device once after a load)."""
        if self._host_steps is None:
            self._host_steps = int(self.steps)
        return self._host_steps

    def _targets(self, own: dict[str, Tensor]) -> list[Tensor]:
        """The tensors the average is computed in: float32 shadows where there are any."""
        shadows = self.fp32_average._buffers
        return [shadows.get(k.replace(".", "__"), own[k]).detach() for k in self._avg_names]

    def _sources(self, model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        """(averaged sources, copied buffers) of `model`, matched by plain state_dict names."""
        src = model.state_dict(keep_vars=True)
        wanted = self._avg_names + self._buffer_names
        if any(k not in src for k in wanted):  # a hand-wrapped model: strip `module.`
            src = _plain_names(model, src)
        missing = [k for k in wanted if k not in src]
        if missing:
            raise KeyError(
                f"{type(self).__name__}: the model lacks {missing[:5]}; "
                "is it the model this average was built from?"
            )
        return [src[k].detach() for k in self._avg_names], [
            src[k].detach() for k in self._buffer_names
        ]

    @torch.no_grad()
    def copy_parameters(self, model: nn.Module) -> None:
        """Set the average to `model`'s current weights without counting an update (what
        `EMAHook` does before its ``begin_iter``/``begin_epoch``)."""
        self._fold(model, average=False)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Fold `model`'s current weights into the average (the first call copies them)."""
        steps = self.num_updates
        self._fold(model, average=steps > 0, steps=steps)
        self._host_steps = steps + 1
        self.steps.fill_(steps + 1)  # a device write, no read

    def _fold(self, model: nn.Module, average: bool, steps: int = 0) -> None:
        sources, buffers = self._sources(model)
        own = self.module.state_dict(keep_vars=True)
        # Each process averages its own shards of sharded (DTensor) tensors.
        targets, sources = local_shards(self._targets(own)), local_shards(sources)
        device = targets[0].device if targets else None
        if any(s.device != device for s in sources):
            sources = [s.to(device) for s in sources]
        if not average:
            torch._foreach_copy_(targets, sources)
        elif steps % self.interval == 0:
            floating = [
                (t, s if s.dtype == t.dtype else s.to(t.dtype))
                for t, s in zip(targets, sources)
                if t.is_floating_point()
            ]
            if floating:
                self._average([t for t, _ in floating], [s for _, s in floating], steps)
        self._publish_shadows(own)
        if buffers:
            own_buffers = local_shards(own[k].detach() for k in self._buffer_names)
            torch._foreach_copy_(own_buffers, local_shards(buffers))

    def _publish_shadows(self, own: dict[str, Tensor] | None = None) -> None:
        """Copy the float32 shadows into the module's low-precision tensors."""
        shadows = self.fp32_average._buffers
        if not shadows:
            return
        own = self.module.state_dict(keep_vars=True) if own is None else own
        for name in self._avg_names:
            shadow = shadows.get(name.replace(".", "__"))
            if shadow is not None:
                local_shards([own[name].detach()])[0].copy_(local_shards([shadow])[0])


def _forget_host_steps(module: nn.Module, _keys: Any) -> None:
    module._host_steps = None  # `steps` was loaded: read it again at the next update
    if isinstance(module, BaseAveragedModel):
        module._publish_shadows()


def _check_momentum(momentum: float) -> None:
    if not 0.0 < momentum < 1.0:
        raise AveragedModelConfigError(f"momentum must be in range (0.0, 1.0), got {momentum!r}")
    if momentum > 0.5:
        current_logger().warning(
            "EMA momentum %s is large: engine (as MMEngine) weights the *new* weights by "
            "momentum, so a typical value is small (e.g. 0.0002); 1 - momentum is the decay",
            momentum,
        )


class ExponentialMovingAverage(BaseAveragedModel):
    """``avg = (1 - momentum) * avg + momentum * weights`` (MMEngine's convention: a small
    momentum averages over many updates).

    Args:
        model, interval, device, update_buffers: as `BaseAveragedModel`.
        momentum: weight of the newest weights, in (0, 1).
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        interval: int = 1,
        device: torch.device | str | None = None,
        update_buffers: bool = False,
    ) -> None:
        super().__init__(model, interval, device, update_buffers)
        _check_momentum(momentum)
        self.momentum = momentum

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        averaged_param.lerp_(source_param, self.momentum)

    def _average(self, averaged: list[Tensor], sources: list[Tensor], steps: int) -> None:
        torch._foreach_lerp_(averaged, sources, self._momentum_at(steps))

    def _momentum_at(self, steps: int) -> float:
        return self.momentum


class MomentumAnnealingEMA(ExponentialMovingAverage):
    """EMA whose momentum starts high and anneals: ``max(momentum, gamma / (gamma + steps))``.

    Args:
        gamma: how fast the momentum anneals towards `momentum` (> 0).
        momentum, interval, device, update_buffers: as `ExponentialMovingAverage`.
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        gamma: int = 100,
        interval: int = 1,
        device: torch.device | str | None = None,
        update_buffers: bool = False,
    ) -> None:
        super().__init__(model, momentum, interval, device, update_buffers)
        if not gamma > 0:
            raise AveragedModelConfigError(f"gamma must be greater than 0, got {gamma!r}")
        self.gamma = gamma

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        averaged_param.lerp_(source_param, self._momentum_at(steps))

    def _momentum_at(self, steps: int) -> float:
        return max(self.momentum, self.gamma / (self.gamma + steps))


class StochasticWeightAverage(BaseAveragedModel):
    """The plain mean of the weights over the updates (SWA, Izmailov et al. 2018)."""

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        averaged_param.add_(source_param - averaged_param, alpha=1.0 / (steps // self.interval + 1))

"""`BaseModel`: the mode contract, `train_step`/`val_step`/`test_step` and `parse_losses`.

`check_forward_takes_mode` checks a model against that contract when a `Runner` is built.
"""

from __future__ import annotations

import inspect
import weakref
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from engine.model.base_module import BaseModule
from engine.model.data_preprocessor import BaseDataPreprocessor, ImgDataPreprocessor
from engine.model.step_checks import (
    BroadcastWatch,
    check_loss_requires_grad,
    explain_forward_error,
    report_broadcast,
)
from engine.registry import MODELS

_PREPROCESSORS = {
    "BaseDataPreprocessor": BaseDataPreprocessor,
    "ImgDataPreprocessor": ImgDataPreprocessor,
}


def build_preprocessor(cfg: nn.Module | dict | None) -> nn.Module:
    """Turn MMEngine's ``dict(type='ImgDataPreprocessor', ...)`` into a module.

    ``type`` is a stock preprocessor's name or a class; a built module is returned
    unchanged; ``None`` gives a `BaseDataPreprocessor`.
    """
    if cfg is None:
        return BaseDataPreprocessor()
    if isinstance(cfg, nn.Module):
        return cfg
    if isinstance(cfg, dict):
        cfg = dict(cfg)
        kind = cfg.pop("type", "BaseDataPreprocessor")
        if isinstance(kind, str) and kind not in _PREPROCESSORS and MODELS.get(kind):
            kind = MODELS.get(kind)  # ported code registers its preprocessor in MODELS
        if isinstance(kind, type) and issubclass(kind, nn.Module):
            return kind(**cfg)
        if kind not in _PREPROCESSORS:
            raise ValueError(
                f"data_preprocessor type {kind!r} is unknown; accepted: {sorted(_PREPROCESSORS)}, "
                "a name registered in engine.registry.MODELS, a class or a built nn.Module"
            )
        return _PREPROCESSORS[kind](**cfg)
    raise TypeError(
        "data_preprocessor should be an nn.Module, a dict with 'type' or None, "
        f"got {type(cfg).__name__}"
    )


class BaseModel(BaseModule):
    """Base class for models trained by engine.

    Subclasses implement ``forward(*inputs, mode)`` with ``mode`` one of

    - ``'loss'``: return a dict of losses (keys containing ``'loss'`` are summed),
    - ``'predict'``: return predictions, as `BaseMetric.process` expects them,
    - ``'tensor'``: return raw network outputs.

    A batch that is a dict is passed as keyword arguments, a list/tuple as
    positional arguments. Override `train_step` for custom optimisation (GANs).

    Args:
        data_preprocessor: a module or ``dict(type=..., ...)`` applied to every
            batch before ``forward``; moves data to the model's device by default.
        init_cfg: MMEngine's weight initialisation config, applied by `init_weights`
            (see `BaseModule`).

    Example:
        >>> class Toy(BaseModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.linear = nn.Linear(1, 1)
        ...     def forward(self, img, label, mode):
        ...         feat = self.linear(img)
        ...         if mode == 'loss':
        ...             return dict(loss=(feat - label).pow(2))
        ...         return feat
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> BaseModel:
        # MMEngine's migration guide shows subclasses that assign sub-modules without
        # calling super().__init__(). Setting up nn.Module state here lets them run
        # as written; __init__ below must therefore not reset it.
        self = super().__new__(cls)
        nn.Module.__init__(self)
        self._is_init = False
        self.init_cfg = None
        self.data_preprocessor = BaseDataPreprocessor()
        # Set by engine.model.wrappers when a distributed wrapper (DDP/FSDP) owns this module:
        # forward must then run through the wrapper so gradients are reduced.
        object.__setattr__(self, "_wrapper_ref", None)
        object.__setattr__(self, "_inside_wrapper", False)
        # The constructor's arguments, so that exported weights can rebuild the model
        # (engine.checkpoint.model_source); not part of the state dict.
        object.__setattr__(self, "_init_args", (args, kwargs))
        return self

    def __init__(
        self, data_preprocessor: nn.Module | dict | None = None, init_cfg: dict | list | None = None
    ) -> None:
        BaseModule.__init__(self, init_cfg)  # keeps the nn.Module state set up in __new__
        if data_preprocessor is not None:
            self.data_preprocessor = build_preprocessor(data_preprocessor)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Under whole-model DDP a forward that builds a graph must run through the wrapper,
        # or its backward reduces nothing and the ranks drift apart silently; this covers
        # an overridden train_step that calls self(...). Calls without gradients (a hook
        # drawing samples on one rank) stay local: DDP's forward may communicate.
        if torch.is_grad_enabled():
            return self._forward_through_wrapper(args, kwargs)
        return super().__call__(*args, **kwargs)

    def __getstate__(self) -> dict:
        # A copy (EMA, deepcopy) or a pickle is not run by the original's distributed
        # wrapper; and weak references do not pickle.
        state = super().__getstate__()
        state["_wrapper_ref"], state["_inside_wrapper"] = None, False
        return state

    def _forward_through_wrapper(self, args: tuple, kwargs: dict) -> Any:
        wrapper = wrapper_of(self)
        if wrapper is None or self._inside_wrapper:  # the wrapper's own call of its module
            return nn.Module.__call__(self, *args, **kwargs)
        object.__setattr__(self, "_inside_wrapper", True)
        try:
            return wrapper(*args, **kwargs)
        finally:
            object.__setattr__(self, "_inside_wrapper", False)

    def forward(self, *inputs: Any, mode: str = "tensor", **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(*inputs, mode)")

    # -- steps ---------------------------------------------------------------
    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        """Preprocess, compute losses, update parameters; return detached log variables.

        The returned values stay on the device: nothing here reads a tensor back to the host.
        """
        # The first step also looks for a loss that broadcasts (N, 1) against (N,).
        first = not self.__dict__.get("_engine_stepped", False)
        object.__setattr__(self, "_engine_stepped", True)
        watch = BroadcastWatch() if first else nullcontext()
        with optim_wrapper.optim_context(self), watch:
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode="loss")
        if first:
            report_broadcast(self, watch)
        loss, log_vars = self.parse_losses(losses)
        check_loss_requires_grad(self, losses, loss)
        num_items = log_vars.get("num_items")
        if num_items is None:
            optim_wrapper.update_params(loss)
        else:  # token-weighted: the window's update is the mean over all its items
            optim_wrapper.update_params(loss, num_items=num_items)
        grad_norm = getattr(optim_wrapper, "last_grad_norm", None)
        if grad_norm is not None:
            log_vars["grad_norm"] = grad_norm
        return log_vars

    def val_step(self, data: Any) -> Any:
        """Preprocess with ``training=False`` and return ``forward(mode='predict')``."""
        data = self.data_preprocessor(data, False)
        return self._run_forward(data, mode="predict")

    def test_step(self, data: Any) -> Any:
        """Same as `val_step`; override when testing differs."""
        data = self.data_preprocessor(data, False)
        return self._run_forward(data, mode="predict")

    def _run_forward(self, data: Any, mode: str) -> Any:
        # Through the distributed wrapper with or without gradients: FSDP/ZeRO-3 need it
        # to gather their sharded parameters for evaluation too.
        try:
            if isinstance(data, dict):
                return self._forward_through_wrapper((), {**data, "mode": mode})
            if isinstance(data, list | tuple):
                return self._forward_through_wrapper(tuple(data), {"mode": mode})
        except (RuntimeError, ValueError, IndexError, TypeError) as err:
            explain_forward_error(self, data, mode, err)  # a shape error: name batch and forward
            raise
        raise TypeError(
            f"a batch must be a dict (passed as keyword arguments) or a list/tuple "
            f"(passed as positional arguments), got {type(data).__name__}"
        )

    # -- inference ---------------------------------------------------------
    def predict(self, data: Any) -> Any:
        """Predictions for one batch: ``val_step`` in eval mode, without gradients.

        The batch goes through the data preprocessor (moved to the model's device,
        normalised) and then ``forward(..., mode='predict')``, as in validation; the
        model's train/eval mode is put back afterwards. This is the way to predict:
        ``forward(mode='tensor')`` alone skips the preprocessing.

        Args:
            data: one batch, as the validation loader yields it (a dict or a tuple).

        Returns:
            What ``forward(mode='predict')`` returns.

        Example:
            >>> model = load_exported("digits.safetensors")
            >>> scores, labels = model.predict({"inputs": images})
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.val_step(data)
        finally:
            self.train(was_training)

    # -- losses --------------------------------------------------------------
    def parse_losses(self, losses: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sum every entry whose key contains ``'loss'`` into the total loss.

        A tensor counts by its mean, a list of tensors by the sum of their means;
        other keys (e.g. ``acc``) are logged but not summed. An optional ``num_items``
        entry (an int or a scalar tensor, e.g. the batch's non-padding tokens) says how
        many items the total loss averages over: `train_step` then makes each update the
        mean over all the items of its accumulation window, on every process (see
        `engine.optim.token_weighting`), instead of the mean of the micro-batches' means.

        Returns:
            ``(loss, log_vars)`` with ``log_vars`` holding ``'loss'`` first, then
            each key, as detached tensors on the device.
        """
        if not isinstance(losses, dict):
            raise TypeError(
                f"forward(mode='loss') must return a dict of losses, got {type(losses).__name__}; "
                "does forward honour the `mode` argument?"
            )
        parsed: dict[str, torch.Tensor] = {}
        num_items = losses.get("num_items")
        for name, value in losses.items():
            if name == "num_items":
                continue
            if isinstance(value, torch.Tensor):
                # A scalar is its own mean: skip the extra autograd node (hot path).
                parsed[name] = value if value.ndim == 0 else value.mean()
            elif isinstance(value, list | tuple) and all(
                isinstance(v, torch.Tensor) for v in value
            ):
                parsed[name] = sum(v.mean() for v in value)
            else:
                raise TypeError(
                    f"loss entry {name!r} is a {type(value).__name__}; accepted: a tensor or a list of tensors"
                )
        summed = [value for name, value in parsed.items() if "loss" in name]
        if not summed:
            raise ValueError(
                f"forward(mode='loss') returned no key containing 'loss': got {list(losses)}"
            )
        loss = sum(summed[1:], summed[0])  # left to right, as a user writes a + b + c
        log_vars = {"loss": loss.detach()}
        for name, value in parsed.items():
            if name != "loss":  # a user key named 'loss' is already part of the total
                log_vars[name] = value.detach()
        if num_items is not None:
            log_vars["num_items"] = _item_count(num_items, loss.device)
        return loss, log_vars


def _item_count(value: Any, device: torch.device) -> torch.Tensor:
    """``num_items`` as a detached scalar tensor; no host read of a tensor."""
    if isinstance(value, bool) or not isinstance(value, int | float | torch.Tensor):
        raise TypeError(
            f"loss entry 'num_items' is a {type(value).__name__}; accepted: a number or a scalar tensor"
        )
    if isinstance(value, torch.Tensor):
        if value.ndim != 0:
            raise ValueError(
                f"loss entry 'num_items' must be a scalar, got shape {tuple(value.shape)}"
            )
        return value.detach().to(device, non_blocking=True)
    if value < 0:
        raise ValueError(f"loss entry 'num_items' must be >= 0, got {value}")
    return torch.full((), value, device=device)  # a fill on the device: no host-to-device copy


def check_forward_takes_mode(model: nn.Module) -> None:
    """The stock steps call ``forward(*inputs, mode=...)``: a forward without ``mode``
    would fail at the first batch with Python's bare 'unexpected keyword' error."""
    cls = type(model)
    if not isinstance(model, BaseModel) and not callable(getattr(model, "train_step", None)):
        raise TypeError(
            f"model {cls.__name__} is a plain nn.Module; engine needs an engine.BaseModel: "
            "subclass BaseModel and give forward a `mode` argument (mode='loss' returns a dict "
            "of losses, 'predict' the predictions)"
        )
    if not isinstance(model, BaseModel):
        return  # a module with its own train_step calls forward as it likes
    steps = (cls.train_step, cls.val_step, cls.test_step)
    base = (BaseModel.train_step, BaseModel.val_step, BaseModel.test_step)
    if all(s is not b for s, b in zip(steps, base)):
        return  # not a BaseModel, or its own steps call forward as they like
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return
    if "mode" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    raise TypeError(
        f"{cls.__name__}.forward{inspect.signature(model.forward)} has no `mode` argument; "
        "engine calls forward(*inputs, mode=...) with mode 'loss', 'predict' or 'tensor'"
    )


def attach_wrapper(module: nn.Module, wrapper: nn.Module) -> None:
    """Route `module`'s step functions through a distributed `wrapper` (DDP, FSDP).

    Weak references to both, so a copy of the model (EMA, ``copy.deepcopy``) is not routed
    through the original's wrapper: `wrapper_of` checks the module it was attached to.
    """
    if isinstance(module, BaseModel):
        ref = None if wrapper is module else (weakref.ref(wrapper), weakref.ref(module))
        object.__setattr__(module, "_wrapper_ref", ref)


def wrapper_of(module: nn.Module) -> nn.Module | None:
    """The distributed wrapper attached to `module` by `attach_wrapper`, if any."""
    ref = getattr(module, "_wrapper_ref", None)
    if ref is None or ref[1]() is not module:
        return None
    return ref[0]()

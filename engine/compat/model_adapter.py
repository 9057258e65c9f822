"""`as_engine_model`: run an MMCV model (``train_step(data, optimizer)``) on engine's loops.

MMCV models return ``dict(loss=..., log_vars=..., num_samples=...)`` from ``train_step`` and
leave the update to MMCV's ``OptimizerHook`` (backward, clip, step); GANs step their
optimizers themselves and return no ``loss`` to the hook. The adapter keeps the model's
class, parameters and state-dict keys (it adds engine's model contract on top of the
class), so its checkpoints load into the same model rewritten on `BaseModel`.

Example:
    >>> model = as_engine_model(MMCVToyModel())           # OptimizerHook semantics
    >>> gan = as_engine_model(MMCVGAN(), self_stepping=True)  # train_step steps optimizer[...]
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn

from engine.model.base_model import BaseModel
from engine.model.data_preprocessor import BaseDataPreprocessor
from engine.optim.optim_wrapper import OptimWrapper
from engine.optim.optim_wrapper_dict import OptimWrapperDict


def _torch_optimizers(optim_wrapper: Any) -> Any:
    """What MMCV passes as ``optimizer``: a torch optimizer, or a dict of them by name."""
    if isinstance(optim_wrapper, OptimWrapperDict):
        return {name: w.optimizer for name, w in optim_wrapper.items()}
    return optim_wrapper.optimizer


def _log_vars(outputs: Any, owner: str) -> dict:
    """The numbers of MMCV's ``log_vars`` (tensors detached), with ``loss`` first."""
    if not isinstance(outputs, dict):
        raise TypeError(
            f"{owner}.train_step must return a dict such as dict(loss=..., log_vars=..., "
            f"num_samples=...), got {type(outputs).__name__}"
        )
    out: dict = {}
    if isinstance(outputs.get("loss"), torch.Tensor):
        out["loss"] = outputs["loss"].detach()
    for key, value in (outputs.get("log_vars") or {}).items():
        if isinstance(value, torch.Tensor):
            out[key] = value.detach()
        elif isinstance(value, numbers.Number) and not isinstance(value, bool):
            out[key] = value
    return out


class MMCVModel(BaseModel):
    """engine's step contract over an MMCV model's own ``train_step``/``val_step``.

    Never built directly: `as_engine_model` puts it in front of the model's class.
    ``self_stepping`` (set there): the model's ``train_step`` steps the optimizers it is
    given; otherwise the wrapper updates from the returned ``loss``, as MMCV's
    ``OptimizerHook`` does (with engine's clipping, accumulation and mixed precision).
    """

    _mmcv_class: type = nn.Module
    self_stepping: bool = False

    def forward(self, *args: Any, mode: str | None = None, **kwargs: Any) -> Any:
        # MMCV forwards take their own flags (return_loss=...); engine's mode is not theirs.
        return self._mmcv_class.forward(self, *args, **kwargs)

    def train_step(self, data: Any, optim_wrapper: Any) -> dict:
        """MMCV's ``train_step(data, optimizer)``, then the update ``OptimizerHook`` did."""
        name = self._mmcv_class.__name__
        if self.self_stepping:
            data = self.data_preprocessor(data, True)
            outputs = self._mmcv_class.train_step(self, data, _torch_optimizers(optim_wrapper))
            return _log_vars(outputs, name)
        if not isinstance(optim_wrapper, OptimWrapper):
            raise TypeError(
                f"{name}: one optimizer updates from the returned loss; with several "
                "(a GAN stepping them itself) use as_engine_model(model, self_stepping=True)"
            )
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            outputs = self._mmcv_class.train_step(self, data, optim_wrapper.optimizer)
        log_vars = _log_vars(outputs, name)
        if not isinstance(outputs.get("loss"), torch.Tensor):
            raise TypeError(
                f"{name}.train_step returned no 'loss' tensor for the update; a model that "
                "steps its optimizers itself needs as_engine_model(model, self_stepping=True)"
            )
        optim_wrapper.update_params(outputs["loss"])
        grad_norm = getattr(optim_wrapper, "last_grad_norm", None)
        if grad_norm is not None:
            log_vars["grad_norm"] = grad_norm
        return log_vars

    def val_step(self, data: Any) -> Any:
        """MMCV's ``val_step(data, optimizer=None)``; its outputs go to the metrics."""
        return self._mmcv_class.val_step(self, self.data_preprocessor(data, False), None)

    def test_step(self, data: Any) -> Any:
        """As `val_step` (MMCV tests through ``val_step`` or ``forward(return_loss=False)``)."""
        return self.val_step(data)


_ADAPTED: dict[type, type] = {}


def as_engine_model(model: nn.Module, self_stepping: bool = False) -> MMCVModel:
    """Make an MMCV model trainable by engine's `Runner`, in place, and return it.

    The model keeps its class (the adapter is put in front of it), parameters and
    state-dict keys; any optimizer already built over its parameters stays valid.

    Args:
        model: An ``nn.Module`` with MMCV's ``train_step(data, optimizer)`` (and
            ``val_step`` for validation).
        self_stepping: True when ``train_step`` steps its optimizers itself (GANs); it then
            receives ``optimizer`` as MMCV gave it (a torch optimizer or a dict of them).

    Returns:
        The same object, now an `engine.BaseModel`.
    """
    if isinstance(model, BaseModel):
        raise TypeError(f"{type(model).__name__} is already an engine BaseModel; pass it as is")
    if not isinstance(model, nn.Module) or not callable(getattr(model, "train_step", None)):
        raise TypeError(
            "as_engine_model needs an MMCV model: an nn.Module with train_step(data, optimizer), "
            f"got {type(model).__name__}"
        )
    cls = type(model)
    if cls not in _ADAPTED:
        _ADAPTED[cls] = type(f"MMCV{cls.__name__}", (MMCVModel, cls), {"_mmcv_class": cls})
    model.__class__ = _ADAPTED[cls]
    # What BaseModel.__new__ sets up on a model it creates (see engine.model.base_model).
    object.__setattr__(model, "_wrapper_ref", None)
    object.__setattr__(model, "_inside_wrapper", False)
    model.data_preprocessor = BaseDataPreprocessor()
    model.self_stepping = self_stepping
    return model

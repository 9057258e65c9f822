"""`MMDistributedDataParallel` and `MMFullyShardedDataParallel`: torch's DDP and FSDP with
MMEngine's ``train_step``/``val_step``/``test_step``.

For ported code that wraps a model itself (``MMDistributedDataParallel(module=model)`` in
its own loop or a custom wrapper). A Runner never needs it: ``model_wrapper=None``,
``'MMDistributedDataParallel'`` or this class all let Accelerate wrap the model in DDP
(`engine.model.wrappers.wrap_model`). The process group must exist before construction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.nn.parallel import DistributedDataParallel

from engine.logging.mm_logger import current_logger


class _MMSteps:
    """MMEngine's step methods for a wrapper holding the model as ``self.module``."""

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        """One optimisation step; `optim_wrapper.optim_context` skips the gradient
        reduction on accumulation steps that do not update.

        Returns:
            The model's ``log_vars`` (``{'loss': ..., 'loss_x': ...}``).
        """
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, training=True)
            losses = self._run_forward(data, mode="loss")
        parsed_loss, log_vars = self.module.parse_losses(losses)
        if getattr(self, "detect_anomalous_params", False):
            self._log_unused_params(parsed_loss)
        optim_wrapper.update_params(parsed_loss)
        return log_vars

    def val_step(self, data: Any) -> Any:
        """The model's own ``val_step`` (no gradient reduction is needed)."""
        return self.module.val_step(data)

    def test_step(self, data: Any) -> Any:
        """The model's own ``test_step``."""
        return self.module.test_step(data)

    def _run_forward(self, data: Any, mode: str) -> Any:
        if isinstance(data, dict):
            return self(**data, mode=mode)
        if isinstance(data, list | tuple):
            return self(*data, mode=mode)
        raise TypeError(
            f"a batch must be a dict (keyword arguments) or a list/tuple (positional), "
            f"got {type(data).__name__}"
        )

    def _log_unused_params(self, loss: torch.Tensor) -> None:
        """Walk the loss's autograd graph; log trainable parameters it never reaches."""
        reached, stack, seen = set(), [loss.grad_fn], set()
        while stack:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            if hasattr(fn, "variable"):  # an AccumulateGrad node: a leaf parameter
                reached.add(id(fn.variable))
            stack.extend(next_fn for next_fn, _ in fn.next_functions)
        for name, param in self.module.named_parameters():
            if param.requires_grad and id(param) not in reached:
                current_logger().error(
                    "%s with shape %s is not in the computational graph of the loss",
                    name,
                    tuple(param.shape),
                )


class MMDistributedDataParallel(_MMSteps, DistributedDataParallel):
    """DDP whose ``train_step`` runs preprocess -> forward (gradients reduced by DDP) ->
    ``parse_losses`` -> ``optim_wrapper.update_params``, as MMEngine's.

    Args:
        module: the model (an `engine.BaseModel`).
        detect_anomalous_params: after each forward, log (error level) every trainable
            parameter that the loss does not depend on; slow, for debugging DDP's
            "parameters that were not used in producing loss" error.
        **kwargs: `torch.nn.parallel.DistributedDataParallel` arguments.

    Example:
        >>> ddp = MMDistributedDataParallel(module=model)
        >>> log_vars = ddp.train_step(batch, optim_wrapper)
    """

    def __init__(self, module: nn.Module, detect_anomalous_params: bool = False, **kwargs: Any):
        super().__init__(module=module, **kwargs)
        self.detect_anomalous_params = detect_anomalous_params


class MMFullyShardedDataParallel(_MMSteps, FullyShardedDataParallel):
    """torch FSDP (``FullyShardedDataParallel(module, **kwargs)``) with MMEngine's steps.

    A Runner gets FSDP from Accelerate instead (``model_wrapper='MMFullyShardedDataParallel'``
    or ``accelerate config``); this class is for ported code that wraps the model itself.
    """

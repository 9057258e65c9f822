"""`BaseOptimWrapper`: MMEngine's base of optim wrappers: the optimizer, its param groups,
the lr and momentum views, and the state dict. Updating is the subclasses' (`OptimWrapper`).

With more than one param group (``paramwise_cfg``), MMEngine keeps an extra group,
``base_param_settings``, holding the optimizer's defaults: ``param_groups`` lists it last,
so schedulers move it with the others, and ``get_lr()`` reports its lr as ``base_lr`` —
the scheduled lr before any per-group multiplier. It holds no parameter of the model.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any

import torch


class BaseOptimWrapper(metaclass=ABCMeta):
    """The optimizer-facing half of an optim wrapper.

    Args:
        optimizer: a torch optimizer (or one prepared by Accelerate).

    Example:
        >>> ow = OptimWrapper(torch.optim.SGD([{'params': [w]}, {'params': [b], 'lr': 0.2}], lr=0.1))
        >>> ow.get_lr()
        {'base_lr': [0.1], 'lr': [0.1, 0.2]}
    """

    def __init__(self, optimizer: Any) -> None:
        if not hasattr(optimizer, "param_groups") or not callable(getattr(optimizer, "step", None)):
            raise TypeError(
                "optimizer must be a torch.optim.Optimizer (or one prepared by Accelerate), "
                f"got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_param_settings: dict | None = None
        if len(optimizer.param_groups) > 1:
            # MMEngine's tensor: a group needs 'params'; this one holds no model parameter.
            self.base_param_settings = {"params": torch.tensor([0.0]), **optimizer.defaults}

    @abstractmethod
    def update_params(self, *args: Any, **kwargs: Any) -> None:
        """Backward, then (when a window ends) step and zero the gradients."""

    @abstractmethod
    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None: ...

    @abstractmethod
    def zero_grad(self, **kwargs: Any) -> None: ...

    @abstractmethod
    def step(self, **kwargs: Any) -> None: ...

    @property
    def param_groups(self) -> list[dict]:
        """The optimizer's param groups, then ``base_param_settings`` when there is one."""
        groups = self.optimizer.param_groups
        return groups if self.base_param_settings is None else [*groups, self.base_param_settings]

    @property
    def defaults(self) -> dict:
        return self.optimizer.defaults

    def get_lr(self) -> dict[str, list[float]]:
        """``{'lr': [one per param group]}``, with ``'base_lr'`` first when there is an
        extra group (see the module docstring)."""
        lrs = {"lr": [group["lr"] for group in self.optimizer.param_groups]}
        if self.base_param_settings is not None:
            return {"base_lr": [self.base_param_settings["lr"]], **lrs}
        return lrs

    def get_momentum(self) -> dict[str, list[float]]:
        """``{'momentum': [...]}``: SGD's ``momentum``, Adam's ``betas[0]``, else 0."""
        values = []
        for group in self.optimizer.param_groups:
            if "momentum" in group:
                values.append(group["momentum"])
            elif "betas" in group:
                values.append(group["betas"][0])
            else:
                values.append(0.0)
        return {"momentum": values}

    def state_dict(self) -> dict:
        """The optimizer's state dict, with ``base_param_settings`` when there is one."""
        state = self.optimizer.state_dict()
        if self.base_param_settings is not None:
            state = {**state, "base_param_settings": self.base_param_settings}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        base = state.pop("base_param_settings", None)
        if base is not None:
            self.base_param_settings = base
        self.optimizer.load_state_dict(state)

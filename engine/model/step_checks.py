"""Checks of a model's first steps that turn silent or cryptic mistakes into one line.

`BaseModel` calls these: a forward that rejects the batch's shapes gets the batch's shapes
and the forward's signature added to torch's message (`explain_forward_error`); a loss that
does not require grad is named (`check_loss_requires_grad`); and on the first training step
an operation that broadcasts two tensors of the same elements into an outer product (a
prediction of shape (N, 1) against a target of shape (N,)) is reported once
(`BroadcastWatch`). Nothing here runs after the first step, or when nothing went wrong.

Example:
    >>> with BroadcastWatch() as watch:
    ...     (torch.ones(4, 1) - torch.ones(4)).pow(2).mean()
    >>> watch.found
    ((4, 1), (4,), (4, 4))
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

logger = logging.getLogger("engine")

_SHAPE_WORDS = ("shape", "size", "dimension", "mat1", "must match", "expected input", "dtype")


def describe_batch(data: Any) -> str:
    """The shapes in a batch, e.g. ``x: (2, 4) float32, y: (2, 1) float32``."""

    def one(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
        if isinstance(value, list | tuple):
            return f"{type(value).__name__} of {len(value)}"
        return type(value).__name__

    if isinstance(data, dict):
        return ", ".join(f"{k}: {one(v)}" for k, v in data.items())
    if isinstance(data, list | tuple):
        return ", ".join(f"[{i}]: {one(v)}" for i, v in enumerate(data))
    return one(data)


def explain_forward_error(model: torch.nn.Module, data: Any, mode: str, err: Exception) -> None:
    """Re-raise a shape error from `model`'s forward naming the batch and the forward."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    name = type(model).__name__
    try:
        signature = str(inspect.signature(model.forward))
    except (TypeError, ValueError):
        signature = "(...)"
    if type(err) is TypeError and text.startswith(f"{name}.forward()"):
        # Python's own binding error: the batch's items do not fit forward's arguments.
        raise TypeError(
            f"{name}.forward{signature} does not take the batch ({describe_batch(data)}): "
            f"{text.removeprefix(f'{name}.forward() ')}; a dict batch is passed as keyword "
            "arguments, a list/tuple as positional ones"
        ) from err
    if type(err) in (RuntimeError, ValueError, IndexError) and any(w in text for w in _SHAPE_WORDS):
        raise type(err)(
            f"{name}.forward{signature} rejected the batch in mode {mode!r} "
            f"({describe_batch(data)}): {text}"
        ) from err


def check_loss_requires_grad(model: torch.nn.Module, losses: dict, loss: torch.Tensor) -> None:
    """A total loss that needs no gradient cannot train: say which entries are detached."""
    if loss.requires_grad or not torch.is_grad_enabled():
        return
    name = type(model).__name__
    if not any(p.requires_grad for p in model.parameters()):
        raise RuntimeError(
            f"{name} has no parameter with requires_grad=True (all frozen); unfreeze some before "
            "training"
        )
    detached = [k for k, v in losses.items() if "loss" in k and not _requires_grad(v)]
    raise RuntimeError(
        f"{name}.forward(mode='loss') returned losses {detached} that do not require grad: "
        "they are detached from the graph (a .detach(), .item(), torch.no_grad() or a new "
        "tensor in forward); return tensors computed from the parameters"
    )


def _requires_grad(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.requires_grad
    return any(_requires_grad(v) for v in value) if isinstance(value, list | tuple) else False


_BINARY = {torch.sub, torch.add, torch.mul, torch.div, torch.Tensor.sub, torch.Tensor.add,
           torch.Tensor.mul, torch.Tensor.div, torch.Tensor.__sub__, torch.Tensor.__rsub__,
           torch.Tensor.__add__, torch.Tensor.__radd__, torch.Tensor.__mul__,
           torch.Tensor.__rmul__, torch.Tensor.__truediv__, torch.Tensor.__rtruediv__}  # fmt: skip


def _squeezed(t: torch.Tensor) -> tuple:
    return tuple(s for s in t.shape if s != 1)


class BroadcastWatch(TorchFunctionMode):
    """Records the first element-wise operation (or loss function) whose two tensors hold
    the same elements in different shapes, e.g. (N, 1) and (N,): broadcasting pairs every
    element with every other instead of element by element."""

    def __init__(self) -> None:
        super().__init__()
        self.found: tuple | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.found is None and len(args) >= 2:
            a, b = args[0], args[1]
            if (
                isinstance(a, torch.Tensor)
                and isinstance(b, torch.Tensor)
                and a.shape != b.shape
                and a.numel() > 1
                and _squeezed(a) == _squeezed(b)
            ):
                loss_fn = getattr(func, "__name__", "").endswith("_loss")
                if loss_fn or (
                    func in _BINARY
                    and isinstance(out, torch.Tensor)
                    and out.numel() > max(a.numel(), b.numel())
                ):
                    shape = "a scalar" if loss_fn else tuple(out.shape)
                    self.found = (tuple(a.shape), tuple(b.shape), shape)
        return out


def report_broadcast(model: torch.nn.Module, watch: BroadcastWatch) -> None:
    if watch.found is not None:
        a, b, out = watch.found
        logger.warning(
            "%s.forward(mode='loss') combines tensors of shapes %s and %s into %s: broadcasting "
            "pairs every prediction with every target; make the shapes equal (e.g. squeeze(1) "
            "or unsqueeze(1))",
            type(model).__name__, a, b, out,
        )  # fmt: skip

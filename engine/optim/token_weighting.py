"""Item-weighted accumulation: an update equals one full batch of all its window's items.

A model whose loss is a mean over a varying number of items (the real tokens of a padded
batch) can say so: ``forward(mode='loss')`` returns ``num_items`` next to its losses, and
`BaseModel.train_step` passes it to ``OptimWrapper.update_params(loss, num_items=...)``.
Averaging each micro-batch's mean loss would weight a token of a short micro-batch more
than a token of a long one (the bug the HF Trainer fixed with ``num_items_in_batch``);
weighting by ``num_items`` makes the update the mean over every item of the window, on
every process, including a last partial window.

How, without a host sync per micro-batch: each micro-batch back-propagates
``loss * num_items / ref`` (a sum over its items, divided by a constant ``ref`` that is the
same on every process), and its count is added to a device tensor. When the window ends,
before clipping and the optimizer step, the count is summed across processes (one
all-reduce, queued on the device like DDP's own) and every gradient is multiplied by
``ref * world / total`` on the device. DDP/FSDP average gradients over the ``world``
processes, hence the ``world``. ``ref`` is the previous window's mean items per micro-batch
and process (1 for the first window): it keeps the back-propagated loss near a mean's size,
so fp16's loss scale does not have to absorb a factor of ``num_items``.
The alternative, knowing the window's total before its first backward, would need the
data to count ahead or a look at every micro-batch before any backward.
"""

from __future__ import annotations

from typing import Any

import torch

_GRADS_ELSEWHERE = ("DEEPSPEED", "MEGATRON_LM")


class ItemWeighting:
    """The open window's item count, and the rescaling of gradients when it closes.

    Example:
        >>> weighting = ItemWeighting()
        >>> for loss, n in micro_batches:  # loss: mean over its n items
        ...     weighting.weight(loss, n, None).backward()
        >>> weighting.finish(optimizer, None)  # grads now: mean over all the items
    """

    def __init__(self) -> None:
        self._count: torch.Tensor | None = None  # items seen on this process in the window
        self._micro_batches = 0
        self._ref: torch.Tensor | float = 1.0  # equal on every process

    @property
    def open(self) -> bool:
        """True while a window has weighted micro-batches whose gradients are not rescaled."""
        return self._count is not None

    def weight(self, loss: torch.Tensor, num_items: Any, accelerator: Any) -> torch.Tensor:
        """The loss to back-propagate for a micro-batch whose ``loss`` averages ``num_items``.

        Args:
            loss: the micro-batch's mean loss (a scalar tensor).
            num_items: how many items it averages: an int or a scalar tensor (e.g. the count
                of non-padding tokens), on any device.
            accelerator: the run's ``Accelerator``, or ``None``.
        """
        if num_items is None:
            raise ValueError(
                "this accumulation window mixes micro-batches with and without 'num_items': "
                "return num_items from forward(mode='loss') on every micro-batch, or on none"
            )
        kind = getattr(getattr(accelerator, "distributed_type", None), "name", "")
        if kind in _GRADS_ELSEWHERE:
            raise ValueError(
                f"num_items weighting rescales param.grad at the window's end, but {kind} "
                "steps inside backward on gradients it keeps to itself: return a loss without "
                "num_items under this backend, or train with DDP or model_wrapper='fsdp2'"
            )
        dtype = torch.float64 if loss.device.type != "mps" else torch.float32  # exact counts
        if not isinstance(num_items, torch.Tensor):  # a fill on the device, not a copy to it
            count = torch.full((), float(num_items), device=loss.device, dtype=dtype)
        elif num_items.ndim != 0:
            raise ValueError(
                f"num_items must be a number or a scalar tensor, got shape {tuple(num_items.shape)}"
            )
        else:
            count = num_items.detach().to(loss.device, dtype, non_blocking=True)
        self._count = count if self._count is None else self._count + count
        self._micro_batches += 1
        return loss * (count / self._ref).to(loss.dtype)

    def finish(self, optimizer: Any, accelerator: Any) -> None:
        """Rescale the window's accumulated gradients to the mean over all its items.

        Call after the window's last backward, before clipping and the optimizer step.
        """
        total, world = self._count, 1
        if accelerator is not None and accelerator.num_processes > 1:
            total = accelerator.reduce(total, reduction="sum")  # a device collective
            world = accelerator.num_processes
        # No items anywhere: every gradient is already zero; avoid 0/0.
        total = total.clamp(min=1)
        scale = self._ref * world / total
        grads: dict[tuple, list[torch.Tensor]] = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grads.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
        for (device, dtype), tensors in grads.items():
            # fp32 scale for bf16/fp16 grads: one rounding, in the multiply, not two
            factor = scale.to(device, dtype if dtype == torch.float64 else torch.float32)
            torch._foreach_mul_(tensors, factor)
        self._ref = total / (world * self._micro_batches)
        self._count, self._micro_batches = None, 0

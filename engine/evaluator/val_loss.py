"""`StepLosses`: the validation/test loss, when ``val_step`` returns losses (MMEngine's convention).

A model that also wants its loss on the validation set appends one data element holding
only ``loss`` (a dict of loss tensors) to the predictions ``val_step`` returns. The loop
takes it off before the metrics see the predictions, averages each loss over the batches,
and adds the averages and their sum over the keys containing ``'loss'`` (``'val_loss'``)
to the metrics, as MMEngine's ``ValLoop`` does.

Example:
    >>> losses = StepLosses()
    >>> outputs = losses.take(model.val_step(batch))     # per batch, in the loop
    >>> metrics.update(losses.summary('val'))            # {'loss_cls': 0.31, 'val_loss': 0.31}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist


def _loss_element(outputs: Any) -> Any:
    """The trailing element that holds only ``loss``, or None."""
    if not isinstance(outputs, list) or not outputs:
        return None
    last = outputs[-1]
    keys = getattr(last, "keys", None)
    if isinstance(last, Mapping) or not callable(keys) or list(keys()) != ["loss"]:
        return None
    return last


class StepLosses:
    """Sums of each loss over the batches of one validation (or test) pass, on the device."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def take(self, outputs: Any) -> Any:
        """Record the losses in `outputs` (if any) and return the predictions without them."""
        element = _loss_element(outputs)
        if element is None:
            return outputs
        for name, value in element.loss.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:  # a list of tensors: each counts as one value, as MMEngine
                v = torch.as_tensor(v).detach().float().mean()
                self.sums[name] = self.sums.get(name, 0) + v
                self.counts[name] = self.counts.get(name, 0) + 1
        return outputs[:-1]

    def summary(self, stage: str) -> dict[str, float]:
        """Each loss's mean over the batches of every process, and ``'<stage>_loss'``, the sum
        of those whose name contains ``'loss'``; ``{}`` when no batch returned losses.
        Every process must call it (it communicates)."""
        if not self.sums:
            return {}
        names = sorted(self.sums)
        totals = torch.stack([self.sums[n] for n in names]).double()
        counts = torch.tensor(
            [self.counts[n] for n in names], dtype=torch.float64, device=totals.device
        )
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            both = torch.cat([totals, counts])
            dist.all_reduce(both)
            totals, counts = both[: len(names)], both[len(names) :]
        means = (totals / counts).tolist()  # the one host sync of the pass
        out = dict(zip(names, means))
        out[f"{stage}_loss"] = sum(v for n, v in out.items() if "loss" in n)
        self.sums.clear()
        self.counts.clear()
        return out

"""`ZeroRedundancyOptimizer`: torch's ZeRO-1 optimizer with MMEngine's config signature.

``dict(type='ZeroRedundancyOptimizer', optimizer_type='AdamW', lr=...)`` shards the inner
optimizer's state across the processes of the group (each keeps ~1/world_size of it). It
needs a process group (``accelerate launch``, or ``init_process_group`` in a test).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.distributed.optim import ZeroRedundancyOptimizer as _TorchZeRO

from engine.dist import is_main_process


class ZeroRedundancyOptimizer(_TorchZeRO):
    """torch's ``ZeroRedundancyOptimizer`` with the inner optimizer named by a string.

    Args:
        params: parameters or param groups, sharded across the processes.
        optimizer_type: a ``torch.optim`` class name, e.g. ``'SGD'``, ``'AdamW'``.
        **kwargs: the inner optimizer's arguments (``lr``, ``weight_decay``...) and torch
            ZeRO's own (``process_group``, ``parameters_as_bucket_view``).

    ``state_dict()`` gathers every shard on process 0, so it is a collective: call it on
    every process. Process 0 gets the whole state, the others ``{}`` (as MMEngine).

    Example:
        >>> opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_type='SGD', lr=0.1)
    """

    def __init__(self, params: Iterable[Any], optimizer_type: str, **kwargs: Any) -> None:
        optimizer_class = getattr(torch.optim, str(optimizer_type), None)
        if not (
            isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)
        ):
            raise ValueError(
                f"ZeroRedundancyOptimizer optimizer_type {optimizer_type!r} is not a torch.optim "
                "optimizer; e.g. optimizer_type='SGD' or 'AdamW'"
            )
        if kwargs.get("overlap_with_ddp"):
            # It needs a DDP communication hook that nothing here registers.
            raise ValueError("ZeroRedundancyOptimizer overlap_with_ddp=True is not supported")
        super().__init__(list(params), optimizer_class, **kwargs)

    def state_dict(self) -> dict:
        """The whole state on process 0 (gathered from every process), ``{}`` elsewhere."""
        self.consolidate_state_dict()
        return super().state_dict() if is_main_process() else {}


__all__ = ["ZeroRedundancyOptimizer"]

"""`SyncBuffersHook`: average the model's buffers (BatchNorm statistics) across processes.

DDP broadcasts buffers from rank 0 on each forward, but modules prepared separately
(``model_wrapper='separate'``) or ``broadcast_buffers=False`` leave each process with its
own statistics; this makes them equal before validation, as MMEngine's hook does.
"""

from __future__ import annotations

import torch

from engine.dist import all_reduce, get_world_size, is_distributed
from engine.hooks.hook import Hook


class SyncBuffersHook(Hook):
    """Mean of every floating buffer over the processes, after each training epoch and
    before each validation (a no-op in one process)."""

    priority = "NORMAL"

    def _sync(self, runner) -> None:
        if not is_distributed() or get_world_size() == 1:
            return
        for buffer in runner.model.buffers():
            if torch.is_floating_point(buffer):
                all_reduce(buffer, op="mean")

    def after_train_epoch(self, runner) -> None:
        self._sync(runner)

    def before_val_epoch(self, runner) -> None:
        self._sync(runner)

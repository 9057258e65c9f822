"""`DistSamplerSeedHook`: give the sampler the epoch before each training epoch (MMEngine's).

engine's loops already call ``set_epoch`` on the loader or its sampler at every pass, so
this hook repeats an idempotent call; it exists so that MMEngine configs and hooks that
name it keep working.
"""

from __future__ import annotations

from engine.hooks.hook import Hook


class DistSamplerSeedHook(Hook):
    """``train_loop.dataloader.sampler.set_epoch(epoch)`` (or its batch sampler's sampler)."""

    priority = "NORMAL"

    def before_train_epoch(self, runner) -> None:
        loop = getattr(runner, "train_loop", None)
        loader = loop.dataloader if loop is not None else runner.train_dataloader
        sampler = getattr(loader, "sampler", None)
        if not hasattr(sampler, "set_epoch"):
            sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(runner.epoch)

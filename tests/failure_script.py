"""Runs for tests/test_failures.py that need a process of their own (signals from outside,
several processes).

    python tests/failure_script.py WORK_DIR wait      # prints READY at iteration 3, then
                                                      # trains slowly until signalled
    <launcher, 2 processes> tests/failure_script.py WORK_DIR vote
        # rank 0 signals itself after iteration 3, rank 1 after iteration 7; both must stop
        # after the same iteration (the vote) and print "STOPPED rank=<r> iter=<n>"
"""

from __future__ import annotations

import os
import signal
import sys
import time

import torch
from torch import nn

from engine import BaseModel, Hook, Runner
from engine.signals import SignalHook


class Linear(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)

    def forward(self, x, y, mode="tensor"):
        if mode == "loss":
            return {"loss": (self.net(x) - y).pow(2).mean()}
        return self.net(x)


def data(n: int = 64) -> list:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return list(zip(x, x.sum(1, keepdim=True)))


class Announce(Hook):
    """Prints READY after iteration 3; then slows the loop so the test can signal it."""

    priority = "HIGHEST"

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter == 3:
            print("READY", flush=True)
        if runner.iter >= 3:
            time.sleep(0.05)


class SignalSelf(Hook):
    """Sends this process SIGTERM after iteration `at`."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


def main(work_dir: str, mode: str) -> None:
    rank = int(os.environ.get("RANK", "0"))
    hooks = [Announce()] if mode == "wait" else [SignalSelf(3 if rank == 0 else 7)]
    runner = Runner(
        model=Linear(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=data(), batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=10_000 if mode == "wait" else 30),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01), accumulative_counts=2),
        default_hooks=dict(logger=None, signal=SignalHook(sync_interval=2)),
        custom_hooks=hooks,
        randomness=dict(seed=0),
    )
    runner.train()
    print(
        f"STOPPED rank={rank} iter={runner.iter} should_stop={runner.state.should_stop}", flush=True
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Runs for tests/test_failures.py that need a process of their own (signals from outside,
several processes).

    python tests/failure_script.py WORK_DIR wait      # prints READY at iteration 3, then
                                                      # trains slowly until signalled
    <launcher, 2 processes> tests/failure_script.py WORK_DIR vote
        # rank 0 signals itself after iteration 3, rank 1 after iteration 7; both must stop
        # after the same iteration (the vote) and print "STOPPED rank=<r> iter=<n>".
        # Then, in the same processes, rank 1 alone gets a NaN loss in iteration 3: both
        # must raise at the log interval and print "RAISED rank=<r> iter=<n> <message>".
"""

from __future__ import annotations

import os
import signal
import sys
import time

import torch
from torch import nn

from engine import BaseModel, Hook, Runner
from engine.hooks.signal_hook import SignalHook


class Linear(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)
        self.poisoned = False  # loss_aux (no gradient) is NaN while set

    def forward(self, x, y, mode="tensor"):
        if mode == "loss":
            aux = torch.tensor(float("nan") if self.poisoned else 0.0)
            return {"loss": (self.net(x) - y).pow(2).mean(), "loss_aux": aux}
        return self.net(x)


def data(n: int = 64) -> list:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return list(zip(x, x.sum(1, keepdim=True)))


class Announce(Hook):
    """Prints READY after iteration 3; then slows the loop so the test can signal it."""

    priority = "HIGHEST"

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.state.iter == 3:
            print("READY", flush=True)
        if runner.state.iter >= 3:
            time.sleep(0.05)


class SignalSelf(Hook):
    """Sends this process SIGTERM after iteration `at`."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.state.iter == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


class Poison(Hook):
    """Makes iteration `at`'s loss NaN on this process."""

    def __init__(self, at: int | None) -> None:
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        model = runner.accelerator.unwrap_model(runner.model)  # under DDP: the inner module
        model.poisoned = runner.iter + 1 == self.at


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
    if mode == "vote":
        nan_on_one_process(work_dir, rank, runner.accelerator)


def nan_on_one_process(work_dir: str, rank: int, accelerator) -> None:
    runner = Runner(
        model=Linear(),
        work_dir=os.path.join(work_dir, "nan"),
        train_dataloader=dict(dataset=data(), batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=12),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        default_hooks=dict(logger=dict(type="LoggerHook", interval=4), checkpoint=None),
        custom_hooks=[Poison(3 if rank == 1 else None)],
        accelerator=accelerator,
    )
    try:
        runner.train()
    except FloatingPointError as err:
        print(f"RAISED rank={rank} iter={runner.iter} {err}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
    # Meet, then close the process group: a gloo rank that tears down while its peer is
    # still inside a collective, or exits with the group open, can abort at exit.
    from accelerate import PartialState

    PartialState().wait_for_everyone()
    PartialState().destroy_process_group()

"""``nan_policy`` under ``model_wrapper='fsdp2'`` when one process alone sees a NaN, for
tests/test_fsdp2_nan.py.

``<launcher> tests/fsdp2_nan_script.py OUT`` (2 processes: the NaN is on process 1 only; or
1 process: the reference, with the same NaN in its whole tensors), two runs in turn:

- skip: update 3's gradient of ``blocks.0.fc.weight`` gets one NaN, in process 1's shard
  only; ``nan_policy='skip'``. Writes ``OUT/skip_<processes>.pt`` (whole weights, and each
  process's count of skipped updates).
- stop: iteration 3's logged ``loss_aux`` (no gradient) is NaN on process 1 only;
  ``nan_policy='stop'`` with a check every 2 iterations. Each process prints
  ``RAISED rank=<r> iter=<n>``; writes ``OUT/stop_<processes>.pt`` (whole weights then).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from engine import Hook, Runner
from engine.hooks.nan_guard_hook import NanGuardHook
from fsdp2_script import GLOBAL_BATCH, Net, data, full_params


class AuxNet(Net):
    """`Net` with a logged, gradient-free ``loss_aux`` that is NaN while `poisoned`."""

    poisoned = False

    def forward(self, inputs, targets=None, mode="tensor"):
        pred = self.head(self.blocks(self.embed(inputs)))
        if mode == "loss":
            aux = torch.tensor(float("nan") if self.poisoned else 0.0)
            return {"loss": F.mse_loss(pred, targets), "loss_aux": aux}
        return pred


class PoisonGradShard(Hook):
    """Before update `at`, put a NaN into this process's shard of one weight's gradient
    (a step pre-hook registered before NanGuardHook's, so it sees the NaN)."""

    priority = "HIGHEST"

    def __init__(self, at: int, poison: bool) -> None:
        self.at, self.poison, self.steps = at, poison, 0

    def before_train(self, runner) -> None:
        weight = runner._raw_model.blocks[0].fc.weight
        optimizer = runner.optim_wrapper.optimizer
        optimizer = getattr(optimizer, "optimizer", optimizer)  # torch's, inside Accelerate's
        optimizer.register_step_pre_hook(lambda *_: self._step(weight))

    def _step(self, weight: torch.Tensor) -> None:
        self.steps += 1
        if self.steps == self.at and self.poison:
            grad = weight.grad.to_local() if hasattr(weight.grad, "to_local") else weight.grad
            grad[0, 0] = float("nan")  # one value of this process's rows of the gradient


class PoisonLoss(Hook):
    def __init__(self, at: int, poison: bool) -> None:
        self.at, self.poison = at, poison

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        runner._raw_model.poisoned = self.poison and runner.iter + 1 == self.at


def _runner(policy: str, hook: Hook, world: int, accelerator=None, **kwargs) -> Runner:
    return Runner(
        model=AuxNet(),
        work_dir=None,
        train_dataloader=dict(dataset=data(), batch_size=GLOBAL_BATCH // world),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        model_wrapper="fsdp2",
        nan_policy=policy,
        custom_hooks=[hook],
        accelerator=accelerator,
        **kwargs,
    )


def main(out: Path) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    poison = rank == world - 1  # process 1 of 2; the only process of 1
    runner = _runner(
        "skip",
        PoisonGradShard(3, poison),
        world,
        train_cfg=dict(by_epoch=False, max_iters=6),
        default_hooks=dict(logger=None, checkpoint=None),
    )
    runner.train()
    skipped = torch.tensor([float(runner.hooks.get(NanGuardHook).skipped)])
    counts = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(counts, skipped) if world > 1 else counts.__setitem__(0, skipped)
    weights = full_params(runner.model)
    if rank == 0:
        torch.save({"weights": weights, "skipped": torch.cat(counts)}, out / f"skip_{world}.pt")

    runner = _runner(
        "stop",
        PoisonLoss(3, poison),
        world,
        accelerator=runner.accelerator,
        train_cfg=dict(by_epoch=False, max_iters=6),
        default_hooks=dict(logger=dict(type="LoggerHook", interval=2), checkpoint=None),
    )
    try:
        runner.train()
    except FloatingPointError:
        print(f"RAISED rank={rank} iter={runner.iter}", flush=True)
    weights = full_params(runner.model)
    if rank == 0:
        torch.save({"weights": weights}, out / f"stop_{world}.pt")
        print(f"PASS processes={world}", flush=True)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))

"""engine.dataset and the validation loss under two processes, run by
tests/test_data_eval_distributed.py.

Usage: ``accelerate launch --multi_gpu --num_processes 2 tests/dist_data_eval_script.py OUT``.
Every rank asserts; the main process prints ``PASS <scenario>`` for each scenario passed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from engine import BaseMetric, BaseModel, CheckpointHook, Hook, Runner
from engine.dataset import DefaultSampler, pseudo_collate

N = 16


class Indexed(Dataset):
    def __init__(self, n=N):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return dict(x=torch.tensor([float(i)]), index=i)


class Recorder(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 4), nn.Dropout(0.5), nn.Linear(4, 1))
        self.seen: list[int] = []

    def forward(self, x, index, mode="tensor"):
        assert isinstance(x, list) and isinstance(index, list)  # pseudo_collate
        self.seen += index
        return {"loss": self.net(torch.stack(x) / N).pow(2).mean()}


class CrashAt(Hook):
    priority = "LOWEST"

    def __init__(self, n):
        self.n = n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == self.n:
            raise KeyboardInterrupt


def run(loader, work_dir, crash=None, resume=False, epochs=2):
    torch.manual_seed(0)
    return Runner(
        model=Recorder(),
        work_dir=work_dir,
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=None, checkpoint=CheckpointHook(interval=3, by_epoch=False)),
        custom_hooks=[CrashAt(crash)] if crash else [],
        randomness=dict(seed=0),
        resume=resume,
    )


class LossElement:
    """A stand-in for the BaseDataElement holding only `loss` that val_step appends."""

    def __init__(self, loss):
        self.loss = loss

    def keys(self):
        return ["loss"]


class ValLoss(Recorder):
    def val_step(self, data):
        x = torch.stack(data["x"])
        return [float(v) for v in x] + [LossElement(dict(loss_x=x.mean()))]


class Count(BaseMetric):
    default_prefix = "count"

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        return {"n": len(results), "sum": sum(results)}


def val_loss_scenario(out):
    runner = Runner(
        model=ValLoss(),
        work_dir=None,
        val_dataloader=dict(
            dataset=Indexed(8), batch_size=2, collate_fn=dict(type="pseudo_collate")
        ),
        val_evaluator=dict(type=Count),
    )
    metrics = runner.val()
    # 4 batches of 2 over both ranks: the mean of the batch means is the mean of 0..7.
    assert metrics["loss_x"] == 3.5 and metrics["val_loss"] == 3.5, metrics
    assert metrics["count/n"] == 8 and metrics["count/sum"] == 28.0, metrics


def gathered(seen):
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, seen)
    return out


def check_epochs(seen_by_rank, epochs, per_rank):
    for e in range(epochs):
        shards = [s[e * per_rank : (e + 1) * per_rank] for s in seen_by_rank]
        assert not set(shards[0]) & set(shards[1]), shards  # disjoint shards
        assert sorted(shards[0] + shards[1]) == list(range(N)), shards  # every sample once


def main(out: Path) -> None:
    cfg = dict(dataset=Indexed(), batch_size=2, collate_fn=dict(type="pseudo_collate"),
               sampler=dict(type="DefaultSampler", shuffle=True, seed=4))  # fmt: skip
    full = run(cfg, out / "full")  # the Accelerator (first Runner) starts the process group
    rank = dist.get_rank()
    full.train()
    seen = gathered(full._raw_model.seen)
    check_epochs(seen, 2, N // 2)
    # Rank 0 takes global batches 0, 2, ... of one seeded permutation (Accelerate's shards).
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(4)).tolist()
    assert seen[0][: N // 2] == [i for b in range(0, N, 4) for i in perm[b : b + 2]], seen[0]
    if rank == 0:
        print("PASS sampler_dict", flush=True)

    # A loader built with MMEngine's self-sharding sampler: rebuilt, so sharded once.
    built = DataLoader(Indexed(), batch_size=2, sampler=DefaultSampler(Indexed(), seed=4),
                       collate_fn=pseudo_collate)  # fmt: skip
    one = run(built, out / "built", epochs=1)
    one.train()
    check_epochs(gathered(one._raw_model.seen), 1, N // 2)
    if rank == 0:
        print("PASS built_sampler", flush=True)

    try:  # 4 iterations per epoch and rank; checkpoint at 6: epoch 1, batch 2
        run(cfg, out / "run", crash=7).train()
    except KeyboardInterrupt:
        pass
    resumed = run(cfg, out / "run", resume=True)
    resumed.train()
    assert resumed.state.iter == 8
    for a, b in zip(full._raw_model.parameters(), resumed._raw_model.parameters()):
        assert torch.equal(a, b)
    if rank == 0:
        print("PASS resume", flush=True)

    val_loss_scenario(out)
    if rank == 0:
        print("PASS val_loss", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    dist.barrier()
    dist.destroy_process_group()

"""Checkpoints on several machines, run by tests/test_node_local.py under a launcher.

Usage: ``accelerate launch --multi_gpu --num_processes 2 tests/node_local_script.py OUT
LAYOUT`` with LAYOUT ``node-local`` (each process gets its own work_dir, as if on its own
machine's disk) or ``shared``. Trains 4 iterations with a checkpoint every 2, then resumes
to 8, and compares the weights on every process with an uninterrupted run to 8. Prints
``PASS <layout>`` on the main process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from engine import BaseModel, CheckpointHook, Runner


class Regressor(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)  # the same initial weights in every process and every run
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 1))

    def forward(self, inputs, targets=None, mode="tensor"):
        return {"loss": F.mse_loss(self.net(inputs), targets)}


def data() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=g)
    return [{"inputs": x[i], "targets": x[i].sum(0, keepdim=True)} for i in range(16)]


def run(work_dir: Path, max_iters: int, resume: bool) -> Runner:
    runner = Runner(
        model=Regressor(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=data(), batch_size=2, shuffle=True),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type="Adam", lr=0.01)),
        default_hooks=dict(logger=None, checkpoint=CheckpointHook(interval=2, by_epoch=False)),
        randomness=dict(seed=0, diff_rank_seed=True),
        resume=resume,
    )
    runner.train()
    return runner


def main() -> None:
    out, layout = Path(sys.argv[1]), sys.argv[2]
    rank = int(os.environ["RANK"])  # the process group starts with the first Runner

    def work_dir(name: str) -> Path:
        return out / name / (f"node{rank}" if layout == "node-local" else "shared")

    reference = run(work_dir("reference"), 8, resume=False)
    run(work_dir("run"), 4, resume=False)
    folder = work_dir("run")
    names = (
        sorted(p.name for p in folder.glob("iter_*")) if folder.exists() else []
    )  # not run folders
    if rank == 0 or layout == "shared":
        assert names == ["iter_2", "iter_4"], names
        files = {p.name for p in (work_dir("run") / "iter_4").iterdir()}
        assert {"rng_state_0.json", "rng_state_1.json", "manifest.json"} <= files, files
    else:  # node-local: nothing is written on the other machines' disks
        assert names == [], names
    resumed = run(work_dir("run"), 8, resume=True)
    assert resumed.iter == 8
    for key, value in reference._raw_model.state_dict().items():
        assert torch.equal(resumed._raw_model.state_dict()[key], value), (rank, key)
    if layout == "node-local" and rank == 1:  # iter_4 was received, then iter_6/8 not written
        assert (work_dir("run") / "iter_4" / "manifest.json").is_file()
    dist.barrier()
    if rank == 0:
        print(f"PASS {layout}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

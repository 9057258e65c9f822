"""Run under ``accelerate launch`` with 2 processes: the logged loss is the processes' mean.

Usage: ``accelerate launch --multi_gpu --num_processes 2 tests/dist_log_script.py WORK_DIR``.
Process r's loss is r + 1 on every iteration; the main process prints the logged losses
as JSON on a line starting with ``LOSSES``.
"""

import json
import sys

import torch
from accelerate import PartialState
from torch.utils.data import DataLoader

from engine import BaseModel, LoggerHook, Runner


class RankLoss(BaseModel):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.tensor(0.0))

    def forward(self, x, mode="tensor"):
        rank = PartialState().process_index
        return {"loss": self.p * 0 + (rank + 1.0) + x.sum() * 0}


def main() -> None:
    runner = Runner(
        model=RankLoss(),
        work_dir=sys.argv[1],
        train_dataloader=DataLoader([(torch.zeros(1),)] * 16, batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=4),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=LoggerHook(interval=2), checkpoint=None),
    )
    runner.train()
    if runner.accelerator.is_main_process:
        lines = (runner.log_dir / "scalars.jsonl").read_text().splitlines()
        print("LOSSES", json.dumps([json.loads(x)["loss"] for x in lines]))
    PartialState().wait_for_everyone()
    PartialState().destroy_process_group()


if __name__ == "__main__":
    main()

"""Two-process Runner runs with a ZeroRedundancyOptimizer, for tests/test_zero_checkpoint.py.

<launcher, 2 processes> tests/zero_checkpoint_script.py WORK_DIR ITERS [resume]
    # trains to ITERS iterations (checkpoint every 4) with ZeRO(SGD, momentum) and writes
    # rank 0's final weights and the optimizer state gathered to rank 0 to WORK_DIR/final_<ITERS>.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from engine import BaseModel, Runner


class Regressor(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x, y, mode="tensor"):
        out = self.net(x)
        return {"loss": (out - y).pow(2).mean()} if mode == "loss" else out


def main(work_dir: Path, iters: int, resume: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    data = TensorDataset(x, x.sum(1, keepdim=True))
    runner = Runner(
        Regressor(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=data, batch_size=4, shuffle=True),
        optim_wrapper=dict(
            optimizer=dict(
                type="ZeroRedundancyOptimizer", optimizer_type="SGD", lr=0.05, momentum=0.9
            )
        ),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=4, by_epoch=False)),
        randomness=dict(seed=0),
        resume=resume,
    )
    runner.train()
    optimizer = runner.optim_wrapper.optimizer
    optimizer = getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper
    state = optimizer.state_dict()  # engine's: gathers on every process, returns on rank 0
    if runner.accelerator.is_main_process:
        momenta = [s["momentum_buffer"] for s in state["state"].values()]
        weights = {k: v.detach().clone() for k, v in runner._raw_model.state_dict().items()}
        torch.save({"weights": weights, "momenta": momenta}, work_dir / f"final_{iters}.pt")
    runner.accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), len(sys.argv) > 3 and sys.argv[3] == "resume")

"""Two-process runs for tests/test_silent_wrong_distributed.py (issue 9, item 13).

<launcher, 2 processes> tests/dist_silent_wrong_script.py WORK_DIR dict_no_wrapper
    # an OptimWrapperDict with model_wrapper=None builds (with its warning) and trains;
    # prints "BUILT rank=<r>"
<launcher, 2 processes> tests/dist_silent_wrong_script.py WORK_DIR failed_save
    # saves epoch_1, then the main process's write of epoch_2 fails (it writes every file,
    # the other ranks' random states included): every rank must raise
    # (none left in a barrier) and print "RAISED rank=<r> <message>"
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from engine import BaseModel, Runner
from engine.checkpoint import checkpoint_files, save
from engine.checkpoint.io import CheckpointError


class TwoParts(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Linear(2, 1)
        self.discriminator = nn.Linear(1, 1)

    def forward(self, x, mode="tensor"):
        out = self.discriminator(self.generator(x))
        return {"loss": out.pow(2).mean()} if mode == "loss" else out


def build(work_dir: Path, per_part: bool = True) -> Runner:
    torch.manual_seed(0)
    member = dict(optimizer=dict(type="SGD", lr=0.1))
    return Runner(
        TwoParts(),
        work_dir,
        train_dataloader=dict(dataset=[{"x": torch.ones(2)}] * 4, batch_size=1),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(generator=member, discriminator=member) if per_part else member,
        default_hooks=dict(logger=None, checkpoint=None),
    )


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def dict_no_wrapper(work_dir: Path) -> None:
    build(work_dir)  # died in __init__ while warning about the whole-model DDP
    print(f"BUILT rank={rank()}", flush=True)


def failed_save(work_dir: Path) -> None:
    runner = build(work_dir, per_part=False)
    save.save_checkpoint(runner, "epoch_1")
    if rank() == 0:
        real = checkpoint_files.write_json

        def full_disk(path, payload):
            if Path(path).name.startswith("rng_state"):
                raise OSError(28, "No space left on device")
            real(path, payload)

        checkpoint_files.write_json = full_disk
    try:
        save.save_checkpoint(runner, "epoch_2")
    except CheckpointError as err:
        print(f"RAISED rank={rank()} {err}", flush=True)
    else:
        print(f"SAVED rank={rank()}", flush=True)


def main() -> None:
    work_dir = Path(sys.argv[1])
    {"dict_no_wrapper": dict_no_wrapper, "failed_save": failed_save}[sys.argv[2]](work_dir)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

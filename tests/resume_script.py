"""A small training run for the resume tests (tests/test_resume.py), run as a subprocess.

Dropout, shuffled data, ``accumulative_counts=2``, a LinearLR warm-up by iteration and a
MultiStepLR by epoch, validation every epoch, a checkpoint every 4 iterations. 8
iterations per epoch, 4 epochs.

    python tests/resume_script.py WORK_DIR OUT.safetensors [--resume] [--kill-at N]
        [--kill-in-save NAME] [--then WORK_DIR OUT ...]

``--kill-at N`` SIGKILLs the process right after iteration N (after its checkpoint, if
one is due); ``--kill-in-save NAME`` SIGKILLs it while checkpoint NAME is being written,
after its weights file and before its other files. OUT receives the final weights.
``--then`` starts another run in the same process once this one is done (one start-up
for several runs).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import save_file
from torch import nn

import engine.checkpoint
from engine import Accuracy, BaseModel, CheckpointHook, Hook, Runner

ITERS_PER_EPOCH, MAX_EPOCHS = 8, 4


class DropoutMLP(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))

    def forward(self, x, y, mode="tensor"):
        logits = self.net(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        if mode == "predict":
            return logits, y
        return logits


def dataset(n: int, seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return list(zip(x, x[:, :3].argmax(1)))


class KillAt(Hook):
    """SIGKILL after iteration `n`: after every other hook, the checkpoint hook included."""

    priority = "LOWEST"

    def __init__(self, n: int) -> None:
        self.n = n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.state.iter == self.n:
            os.kill(os.getpid(), signal.SIGKILL)


def kill_while_saving(name: str) -> None:
    """Die after the weights of checkpoint `name` are written, before its other files."""
    write_optimizer = engine.checkpoint.checkpoint_files._write_optimizer

    def dying(folder, state):
        if folder.name == f".tmp_{name}":
            os.kill(os.getpid(), signal.SIGKILL)
        write_optimizer(folder, state)

    engine.checkpoint.checkpoint_files._write_optimizer = dying


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work_dir")
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--kill-in-save")
    args = parser.parse_args(argv)
    if args.kill_in_save:
        kill_while_saving(args.kill_in_save)
    torch.manual_seed(0)
    runner = Runner(
        model=DropoutMLP(),
        work_dir=args.work_dir,
        train_dataloader=dict(dataset=dataset(4 * ITERS_PER_EPOCH, 0), batch_size=4, shuffle=True),
        val_dataloader=dict(dataset=dataset(12, 1), batch_size=4, shuffle=True),
        val_evaluator=Accuracy(),
        train_cfg=dict(by_epoch=True, max_epochs=MAX_EPOCHS),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.05), accumulative_counts=2),
        param_scheduler=[
            dict(type="LinearLR", start_factor=0.1, by_epoch=False, end=6),  # 6 updates
            dict(type="MultiStepLR", milestones=[2, 3], gamma=0.5, by_epoch=True),
        ],
        default_hooks=dict(checkpoint=CheckpointHook(interval=4, by_epoch=False), logger=None),
        custom_hooks=[KillAt(args.kill_at)] if args.kill_at else [],
        randomness=dict(seed=0),
        resume=args.resume,
    )
    runner.train()
    save_file({k: v.contiguous() for k, v in runner._raw_model.state_dict().items()}, args.out)


def jobs(argv: list[str]) -> list[list[str]]:
    """Split the command line at each ``--then``."""
    out: list[list[str]] = [[]]
    for arg in argv:
        out.append([]) if arg == "--then" else out[-1].append(arg)
    return out


if __name__ == "__main__":
    # One thread: the same arithmetic in every process, and no oversubscribed test machine.
    torch.set_num_threads(1)
    for job in jobs(sys.argv[1:]):
        main(job)
        AcceleratorState._reset_state(True)  # Accelerate's process-wide state, for the next run
        GradientState._reset_state()

"""Runs with ``CheckpointHook(async_save=True)`` for tests/test_async_save.py, in-process or
as a subprocess.

    python tests/async_save_script.py kill WORK_DIR NAME
        trains with background saves and SIGKILLs the process from the writer thread while
        checkpoint NAME is being written (its weights are, its optimizer state is not).
    accelerate launch --num_processes 2 tests/async_save_script.py dist OUT_DIR
        under two processes: an async and a sync run write the same checkpoints, and a
        writer that fails on the main process raises on both; prints ``PASS dist processes=2``.

`build` is the run every scenario (and the in-process tests) use: dropout, shuffled data,
AdamW, validation with a best checkpoint, a periodic checkpoint every 4 iterations of 12,
two kept.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors import safe_open
from torch import nn

import engine.checkpoint.checkpoint_files
from engine import Accuracy, BaseModel, CheckpointError, Runner

MAX_ITERS, INTERVAL = 12, 4


class DropoutMLP(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))

    def forward(self, x, y, mode="tensor"):
        logits = self.net(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        return logits, y


def dataset(n: int, seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return list(zip(x, x[:, :3].argmax(1)))


def build(work_dir, async_save: bool, resume=False, custom_hooks=(), **checkpoint) -> Runner:
    """The test run; `checkpoint` overrides CheckpointHook arguments."""
    torch.manual_seed(0)  # the model's initial weights
    hook = dict(
        type="CheckpointHook",
        interval=INTERVAL,
        by_epoch=False,
        max_keep_ckpts=2,
        save_best="accuracy/top1",
        rule="greater",
        async_save=async_save,
    )
    return Runner(
        model=DropoutMLP(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=dataset(40, 0), batch_size=4, shuffle=True),
        val_dataloader=dict(dataset=dataset(12, 1), batch_size=4),
        val_evaluator=Accuracy(),
        train_cfg=dict(by_epoch=False, max_iters=MAX_ITERS, val_interval=INTERVAL),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.05)),
        default_hooks=dict(logger=None, checkpoint={**hook, **checkpoint}),
        custom_hooks=list(custom_hooks),
        randomness=dict(seed=0),
        resume=resume,
    )


def folder_contents(folder: Path) -> dict:
    """What a checkpoint folder holds, comparable across runs: each file's manifest hash,
    except safetensors files (their header's metadata order varies from write to write),
    which give their tensors and metadata."""
    files = json.loads((folder / "manifest.json").read_text())["files"]
    out: dict = {}
    for name, entry in files.items():
        if name.endswith(".safetensors"):
            with safe_open(str(folder / name), framework="pt") as f:
                out[name] = (f.metadata(), {k: f.get_tensor(k) for k in f.keys()})
        else:
            out[name] = entry["hash"]
    return out


def same_contents(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for name in a:
        if name.endswith(".safetensors"):
            (meta_a, ta), (meta_b, tb) = a[name], b[name]
            if meta_a != meta_b or ta.keys() != tb.keys():
                return False
            if not all(torch.equal(ta[k], tb[k]) for k in ta):
                return False
        elif a[name] != b[name]:
            return False
    return True


def checkpoints(work_dir: Path) -> list[str]:
    return sorted(p.name for p in work_dir.iterdir() if (p / "manifest.json").is_file())


def kill_while_writing(name: str) -> None:
    """SIGKILL the process when the writer thread starts checkpoint `name`'s optimizer file."""
    write_optimizer = engine.checkpoint.checkpoint_files._write_optimizer

    def dying(folder, state):
        if folder.name == f".tmp_{name}":
            os.kill(os.getpid(), signal.SIGKILL)
        write_optimizer(folder, state)

    engine.checkpoint.checkpoint_files._write_optimizer = dying


def distributed(out: Path) -> None:
    runs = {}
    for async_save in (False, True):
        work_dir = out / ("async" if async_save else "sync")
        runner = build(work_dir, async_save)
        runner.train()
        runs[async_save] = work_dir
        rank = runner.accelerator.process_index
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    if rank == 0:
        names = checkpoints(runs[False])
        assert names == checkpoints(runs[True]) and "iter_12" in names, names
        for name in names:
            sync, bg = folder_contents(runs[False] / name), folder_contents(runs[True] / name)
            assert same_contents(sync, bg), name

    # A writer failing on the main process raises on both, at the next save.
    write_optimizer = engine.checkpoint.checkpoint_files._write_optimizer

    def failing(folder, state):
        if folder.name == ".tmp_iter_4":
            raise RuntimeError("injected failure")
        write_optimizer(folder, state)

    engine.checkpoint.checkpoint_files._write_optimizer = failing
    runner = build(out / "failing", True, save_best=None)
    try:
        runner.train()
    except CheckpointError as err:
        message = str(err)
    else:
        raise AssertionError("a failed background write was not raised")
    engine.checkpoint.checkpoint_files._write_optimizer = write_optimizer
    expected = (
        "writing checkpoint 'iter_4' in the background failed (RuntimeError: injected failure)"
        if rank == 0
        else "saving checkpoint 'iter_4' in"
    )
    assert expected in message and "\n" not in message, message
    assert runner.state.iter == 2 * INTERVAL, runner.state.iter  # raised at the next save
    if rank == 0:
        assert not (out / "failing" / ".tmp_iter_4").exists()
        assert not (out / "failing" / "iter_4").exists()
        print(f"PASS dist processes={runner.accelerator.num_processes}", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    scenario, where = sys.argv[1], Path(sys.argv[2])
    if scenario == "kill":
        kill_while_writing(sys.argv[3])
        build(where, True).train()
    elif scenario == "dist":
        distributed(where)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}; use kill or dist")

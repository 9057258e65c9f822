"""A sharded run with EMA that can be SIGKILLed and resumed, for tests/test_fsdp2_resume.py.

``<launcher> tests/fsdp2_resume_script.py OUT TAG WORK_DIR [--resume PATH|latest]
[--wait-at N]``: ``model_wrapper='fsdp2'`` (unsharded in one process), AdamW with
``accumulative_counts=2``, shuffled data (6 iterations a pass), 16 iterations with a
checkpoint every 4 and validation every 6, an `EMAHook`. ``--wait-at N`` writes
``OUT/ready_<rank>`` (its pid) after iteration N and sleeps, for the test to kill the whole launch.
At the end every process writes ``OUT/<TAG>_rank<r>.pt``: its shards of the weights, the
optimizer state and the average; process 0 also ``OUT/<TAG>_full.pt``, the whole weights,
the whole average and the validation results.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from engine import BaseMetric, EMAHook, Hook, Runner
from fsdp2_script import GLOBAL_BATCH, Net, data, full_params


class SquaredError(BaseMetric):
    def process(self, data_batch, data_samples) -> None:
        errors = (data_samples - data_batch["targets"]).pow(2).sum(1)
        self.results.extend(errors.tolist())

    def compute_metrics(self, results: list) -> dict:
        return {"mse": sum(results) / len(results)}


class WaitAt(Hook):
    """After iteration `n` (its checkpoint included), announce it and wait to be killed."""

    priority = "LOWEST"

    def __init__(self, n: int, out: Path) -> None:
        self.n, self.out = n, out

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.state.iter == self.n:
            ready = self.out / f"ready_{runner.accelerator.process_index}"
            ready.write_text(str(os.getpid()))  # the launcher starts workers in their own sessions
            time.sleep(600)


class Metrics(Hook):
    def __init__(self) -> None:
        self.seen: list[float] = []

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.seen.append(metrics["mse"])


def _local(value):
    """`value` with every DTensor replaced by this process's shard."""
    if isinstance(value, dict):
        return {k: _local(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_local(v) for v in value)
    if isinstance(value, torch.Tensor):
        value = value.to_local() if hasattr(value, "to_local") else value
        return value.detach().clone()
    return value


def _full(value: torch.Tensor) -> torch.Tensor:
    return value.full_tensor() if hasattr(value, "full_tensor") else value.detach().clone()


def main(out: Path, tag: str, work_dir: str, resume: str | None, wait_at: int | None) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ema, metrics = EMAHook(momentum=0.1), Metrics()
    hooks = [ema, metrics] + ([WaitAt(wait_at, out)] if wait_at else [])
    data48 = data()
    runner = Runner(
        model=Net(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=data48, batch_size=GLOBAL_BATCH // world, shuffle=True),
        val_dataloader=dict(dataset=data48[:16], batch_size=GLOBAL_BATCH // world),
        val_evaluator=SquaredError(),
        train_cfg=dict(by_epoch=False, max_iters=16, val_interval=6),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.01), accumulative_counts=2),
        model_wrapper="fsdp2",
        default_hooks=dict(
            logger=None, checkpoint=dict(type="CheckpointHook", interval=4, by_epoch=False)
        ),
        custom_hooks=hooks,
        randomness=dict(seed=0),
        resume=True if resume == "latest" else (resume or False),
    )
    runner.train()
    model, optimizer = runner._raw_model, runner.optim_wrapper.optimizer
    rank = dist.get_rank() if dist.is_initialized() else 0
    average = ema.ema_model.module.state_dict()
    torch.save(
        {
            "model": _local(model.state_dict()),
            "optimizer": _local(optimizer.state_dict()),
            "ema": _local(ema.ema_model.state_dict()),
        },
        out / f"{tag}_rank{rank}.pt",
    )
    whole = full_params(model)
    whole_average = {k: _full(v) for k, v in average.items()}  # collective for DTensors
    if rank == 0:
        result = {"model": whole, "ema": whole_average, "val": metrics.seen}
        torch.save(result, out / f"{tag}_full.pt")
        print(f"PASS {tag} processes={world}", flush=True)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    args = sys.argv[1:]
    opts = dict(zip(args[3::2], args[4::2]))
    main(
        Path(args[0]),
        args[1],
        args[2],
        opts.get("--resume"),
        int(opts["--wait-at"]) if "--wait-at" in opts else None,
    )

"""EMAHook under ``model_wrapper='separate'`` in a launched run (tests/test_ema_distributed.py).

Usage: ``accelerate launch --multi_gpu --num_processes 2 tests/ema_separate_script.py OUT``.
Trains TinyGAN one epoch with every child in its own DDP and an EMAHook, writing
``OUT/epoch_1``; the main process prints ``PASS ema_separate processes=N``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from dist_train_script import TinyGAN, regression_data
from engine import Runner
from engine.hooks.ema_hook import EMAHook


def build(work_dir: Path, max_epochs: int, **kwargs) -> Runner:
    """The run both processes of the launch, and the single-process resume, build."""
    torch.manual_seed(0)
    member = dict(optimizer=dict(type="SGD", lr=0.1))
    world = dist.get_world_size() if dist.is_initialized() else 1
    return Runner(
        TinyGAN("bare"),
        work_dir,
        train_dataloader=dict(dataset=regression_data(), batch_size=8 // world),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(generator=member, discriminator=member),
        model_wrapper="separate",
        custom_hooks=kwargs.pop("custom_hooks", [EMAHook(momentum=0.1)]),
        default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=1)),
        randomness=dict(seed=1),
        **kwargs,
    )


def main() -> None:
    out = Path(sys.argv[1])
    runner = build(out, max_epochs=1)
    runner.train()
    world = dist.get_world_size() if dist.is_initialized() else 1
    if world > 1:
        assert isinstance(runner.model.generator, DistributedDataParallel)
    names = runner.hooks.get(EMAHook).ema_model.averaged_names
    assert names and not any("module." in k for k in names), sorted(names)
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(f"PASS ema_separate processes={world}", flush=True)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

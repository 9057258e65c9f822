"""Two processes: a GAN whose generator trains every other iteration ends inside one of its
accumulation windows; the window is applied at the end with its gradients reduced across
the ranks (they ran under no_sync), so every rank holds the same weights.

Run by tests/test_optim_member_windows.py with ``torch.distributed.run --nproc_per_node 2``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dist_train_script import (
    TinyGAN,
    assert_same_on_ranks,
    per_process_batch,
    quiet,
    regression_data,
    world,
)
from engine import Runner


class EveryOtherGAN(TinyGAN):
    """The generator trains on every second iteration (its own window clock)."""

    def train_step(self, data, optim_wrapper):
        real = self.data_preprocessor(data, True)["inputs"]
        d_wrapper, g_wrapper = optim_wrapper["discriminator"], optim_wrapper["generator"]
        train_generator = d_wrapper.inner_count % 2 == 1
        log_vars = self._update("discriminator", d_wrapper, real)
        if train_generator:
            self.discriminator.requires_grad_(False)
            log_vars.update(self._update("generator", g_wrapper, real))
            self.discriminator.requires_grad_(True)
        return log_vars


def main() -> None:
    torch.manual_seed(0)
    model = EveryOtherGAN("context")  # optim_context: no_sync inside windows
    member = dict(optimizer=dict(type="Adam", lr=1e-2), accumulative_counts=4)
    runner = Runner(
        model,
        None,
        train_dataloader=dict(dataset=regression_data(), batch_size=per_process_batch()),
        train_cfg=dict(by_epoch=True, max_epochs=3),  # 12 iterations: the generator gets 6
        optim_wrapper=dict(generator=dict(member), discriminator=dict(member)),
        model_wrapper="separate",
        randomness=dict(seed=1, diff_rank_seed=True),  # the ranks' gradients differ
        **quiet(),
    )
    runner.train()
    assert runner.state.windows == {"generator": 6, "discriminator": 12}, runner.state.windows
    assert all(p.grad is None for p in model.generator.parameters())  # window 2 was applied
    assert_same_on_ranks(model, "generator and discriminator after the last partial window")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank == 0:
        torch.save(model.state_dict(), Path(sys.argv[1]) / f"gan_np{world()}.pt")
    print(f"PASS member windows processes={world()}", flush=True)


if __name__ == "__main__":
    main()

"""FSDP2 scenarios on CPU processes, run by tests/test_fsdp2.py.

Usage: ``<launcher> tests/fsdp2_script.py OUT_DIR train`` (2 processes or 1) and
``python tests/fsdp2_script.py OUT_DIR reshard`` (1 process, reads what 2 processes saved).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from engine import BaseModel, Runner
from engine.checkpoint.sharded import consolidated_model_state, load_sharded, save_sharded

GLOBAL_BATCH, ITERS = 8, 6


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        return x + torch.tanh(self.fc(self.norm(x)))


class Net(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(4, 8)
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(8, 1)

    def forward(self, inputs, targets=None, mode="tensor"):
        pred = self.head(self.blocks(self.embed(inputs)))
        if mode == "loss":
            return {"loss": F.mse_loss(pred, targets)}
        return pred


def data() -> list[dict]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(GLOBAL_BATCH * ITERS, 4, generator=g)
    return [{"inputs": x[i], "targets": x[i, :1] * 2 - x[i, 1:2]} for i in range(len(x))]


def full_params(model: nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


def _counting(collective, calls: dict):
    def counted(*args, **kwargs):
        calls["reduce_scatter"] += 1
        return collective(*args, **kwargs)

    return counted


def train(out: Path) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))  # the process group starts in Runner
    calls = {"reduce_scatter": 0}
    if world > 1:  # FSDP2 reduce-scatters through one of these, by torch version
        for name in ("reduce_scatter_tensor", "reduce_scatter_single"):
            if hasattr(dist, name):
                setattr(dist, name, _counting(getattr(dist, name), calls))
    if world == 1:
        torch.save(Net().state_dict(), out / "params_init.pt")
    runner = Runner(
        model=Net(),
        work_dir=None,
        train_dataloader=DataLoader(data(), batch_size=GLOBAL_BATCH // world),
        train_cfg=dict(by_epoch=False, max_iters=ITERS),
        optim_wrapper=dict(
            optimizer=dict(type="SGD", lr=0.1, momentum=0.9),
            accumulative_counts=2,
            clip_grad=dict(max_norm=0.5),
        ),
        model_wrapper="fsdp2",
        default_hooks=dict(logger=None, checkpoint=None),
    )
    runner.train()
    model, optimizer = runner.model, runner.optim_wrapper.optimizer
    sharded = any(type(p).__name__ == "DTensor" for p in model.parameters())
    assert sharded == (world > 1), f"sharded={sharded} with {world} processes"
    full = full_params(model)
    if world > 1:
        save_sharded(out / "ckpt", model, {"optimizer": optimizer})
    if not dist.is_initialized() or dist.get_rank() == 0:
        torch.save(full, out / f"params_{world}.pt")
        (out / f"reduce_scatter_{world}.txt").write_text(str(calls["reduce_scatter"]))
        print(f"PASS train processes={world}", flush=True)
    if dist.is_initialized():  # meet, then close: a gloo rank can abort at exit otherwise
        dist.barrier()
        dist.destroy_process_group()


def checkpointed(out: Path, resume: str | None = None) -> None:
    """Train 6 iterations with a sharded checkpoint every 2 (or resume from `resume` to 6);
    the final whole weights go to ck_<resume or 'full'>_<processes>.pt."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    data16 = data()[:16]  # a pass is 2 updates: iter_4 is a pass boundary for any process count
    runner = Runner(
        model=Net(),
        work_dir=out / "work",
        train_dataloader=DataLoader(data16, batch_size=GLOBAL_BATCH // world),
        train_cfg=dict(by_epoch=False, max_iters=ITERS),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.01), clip_grad=dict(max_norm=1.0)),
        model_wrapper="fsdp2",
        default_hooks=dict(
            logger=None, checkpoint=dict(type="CheckpointHook", interval=2, by_epoch=False)
        ),
        resume=str(out / "work" / resume) if resume else False,
    )
    runner.train()
    full = full_params(runner.model)
    if not dist.is_initialized() or dist.get_rank() == 0:
        torch.save(full, out / f"ck_{resume or 'full'}_{world}.pt")
        print(f"PASS checkpointed processes={world}", flush=True)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def reshard(out: Path) -> None:
    """One process, no process group: load the 2-process checkpoint into a plain model."""
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    load_sharded(out / "ckpt", model, {"optimizer": optimizer})
    expected = torch.load(out / "params_2.pt", weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    buffers = [optimizer.state[p]["momentum_buffer"] for p in model.parameters()]
    assert all(b.abs().sum() > 0 for b in buffers), "momentum buffers were not restored"
    exported = consolidated_model_state(out / "ckpt")
    assert exported.keys() == expected.keys()
    assert all(torch.equal(exported[k], expected[k]) for k in expected)
    print("PASS reshard processes=1")


if __name__ == "__main__":
    torch.set_num_threads(1)
    scenario = sys.argv[2]
    if scenario == "checkpointed":
        checkpointed(Path(sys.argv[1]), sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        {"train": train, "reshard": reshard}[scenario](Path(sys.argv[1]))

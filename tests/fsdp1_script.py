"""FSDP version 1 on CPU processes (gloo), run by tests/test_fsdp1.py.

torch's FSDP1 runs on CPU when given ``device_id=torch.device('cpu')``; Accelerate selects
its FSDP only on GPUs, so these scenarios wrap the model with FSDP1 themselves:

* ``clip``: an OptimWrapper's clipping under Accelerate's FSDP1 state (a stand-in
  Accelerator whose ``distributed_type`` is FSDP, holding the real FSDP1 root) takes the
  global norm, for the whole model and for an optimizer over part of it.
* ``checkpointed [iter_N]``: a Runner whose ``model_wrapper`` applies FSDP1 trains with a
  checkpoint every 2 iterations (or resumes from iter_N); in one process the model stays whole.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from accelerate.utils import DistributedType
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.wrap import ModuleWrapPolicy
from torch.utils.data import DataLoader

from engine import BaseModel, Runner
from engine.model.base_model import attach_wrapper
from engine.optim import OptimWrapper
from engine.optim.grad_clip import clip_gradients, parse_clip_grad

GLOBAL_BATCH, ITERS = 8, 6


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return x + torch.tanh(self.fc(x))


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


def data(n: int) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return [{"inputs": x[i], "targets": x[i, :1] * 2 - x[i, 1:2]} for i in range(n)]


def fsdp1(model: nn.Module, accelerator=None, use_orig_params: bool = True) -> nn.Module:
    """A ``model_wrapper``: FSDP1 with one unit per Block, on CPU (whole in one process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return model
    wrapped = FSDP(
        model,
        device_id=torch.device("cpu"),
        use_orig_params=use_orig_params,
        auto_wrap_policy=ModuleWrapPolicy({Block}),
    )
    attach_wrapper(model, wrapped)  # the model's own forwards go through the FSDP root
    return wrapped


def full_state(wrapped: nn.Module) -> dict[str, torch.Tensor]:
    """Whole parameters (a collective when sharded)."""
    if not isinstance(wrapped, FSDP):
        return {k: v.detach().clone() for k, v in wrapped.state_dict().items()}
    with FSDP.summon_full_params(wrapped, writeback=False):
        return {
            n.replace("_fsdp_wrapped_module.", ""): p.detach().clone()
            for n, p in wrapped.named_parameters()
        }


def _fsdp1_accelerator(root: nn.Module):
    return types.SimpleNamespace(
        distributed_type=DistributedType.FSDP,
        is_fsdp2=False,
        _models=[root],
        unscale_gradients=lambda optimizer=None: None,
    )


def clip(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    batch = data(GLOBAL_BATCH)
    xs = torch.stack([b["inputs"] for b in batch])
    ys = torch.stack([b["targets"] for b in batch])

    # The reference: one whole model on the global batch (FSDP averages over processes).
    reference = Net()
    F.mse_loss(reference(xs), ys).backward()
    ref_grads = {n: p.grad.clone() for n, p in reference.named_parameters()}
    ref_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in ref_grads.values()]))
    head = [ref_grads["head.weight"], ref_grads["head.bias"]]
    ref_head_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in head]))

    lines = []
    for orig in (True, False):
        model = Net()
        root = fsdp1(model, use_orig_params=orig)
        share = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
        F.mse_loss(root(xs[share]), ys[share]).backward()
        acc = _fsdp1_accelerator(root)
        optimizer = torch.optim.SGD(root.parameters(), lr=0.1)
        before = [p.grad.clone() for p in root.parameters() if p.grad is not None]
        local = torch.linalg.vector_norm(torch.stack([g.norm() for g in before]))
        norm = clip_gradients(parse_clip_grad(dict(max_norm=0.01)), optimizer, acc)
        torch.testing.assert_close(norm, ref_norm, atol=1e-6, rtol=1e-6)
        # Every process scaled its shard by the same global factor.
        scale = 0.01 / (ref_norm + 1e-6)
        after = [p.grad for p in root.parameters() if p.grad is not None]
        for got, was in zip(after, before):
            torch.testing.assert_close(got, was * scale, atol=1e-8, rtol=1e-5)
        if orig:  # and the gathered gradients are the whole model's, clipped
            clipped = full_grads(root)
            for name, grad in ref_grads.items():
                torch.testing.assert_close(clipped[name], grad * scale, atol=1e-7, rtol=1e-5)
        lines.append(f"orig={orig} global={norm.item():.6f} local={local.item():.6f}")

    # An optimizer over part of the model (the head): the subset's global norm.
    model = Net()
    root = fsdp1(model, use_orig_params=True)
    share = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    F.mse_loss(root(xs[share]), ys[share]).backward()
    wrapper = OptimWrapper(torch.optim.SGD(model.head.parameters(), lr=0.1))
    wrapper.accelerator = _fsdp1_accelerator(root)  # the clip path reads only these
    norm = clip_gradients(
        parse_clip_grad(dict(max_norm=1e-3)), wrapper.optimizer, wrapper.accelerator
    )
    torch.testing.assert_close(norm, ref_head_norm, atol=1e-6, rtol=1e-6)
    lines.append(f"subset global={norm.item():.6f} expected={ref_head_norm.item():.6f}")
    if rank == 0:
        (out / "clip.txt").write_text("\n".join(lines) + "\n")
        print("PASS clip", flush=True)
    dist.barrier()
    dist.destroy_process_group()


def full_grads(root: FSDP) -> dict[str, torch.Tensor]:
    with FSDP.summon_full_params(root, writeback=False, with_grads=True):
        return {
            n.replace("_fsdp_wrapped_module.", ""): p.grad.detach().clone()
            for n, p in root.named_parameters()
        }


def checkpointed(out: Path, resume: str | None = None) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    runner = Runner(
        model=Net(),
        work_dir=out / "work",
        train_dataloader=DataLoader(data(16), batch_size=GLOBAL_BATCH // world),
        train_cfg=dict(by_epoch=False, max_iters=ITERS),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.01)),
        model_wrapper=fsdp1,
        default_hooks=dict(
            logger=None, checkpoint=dict(type="CheckpointHook", interval=2, by_epoch=False)
        ),
        resume=str(out / "work" / resume) if resume else False,
    )
    runner.train()
    full = full_state(runner.model)
    if not dist.is_initialized() or dist.get_rank() == 0:
        torch.save(full, out / f"ck_{resume or 'full'}_{world}.pt")
        print(f"PASS checkpointed processes={world}", flush=True)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[2] == "clip":
        clip(Path(sys.argv[1]))
    else:
        checkpointed(Path(sys.argv[1]), sys.argv[3] if len(sys.argv) > 3 else None)

"""Distributed training scenarios, run by tests/test_distributed.py under a launcher.

Usage: ``<launcher> tests/dist_train_script.py OUT_DIR SCENARIO [SCENARIO ...]`` where the
launcher is ``accelerate launch --multi_gpu --num_processes 2``, ``torchrun
--nproc_per_node 2`` or plain ``python`` (one process). Each scenario asserts on every
rank and, when it passed, the main process prints ``PASS <scenario>``; files for the
test to compare are written to OUT_DIR. One launch runs several scenarios, because
each launch costs seconds of process start-up.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from engine import BaseDataPreprocessor, BaseMetric, BaseModel, Runner
from engine.model.wrappers import prepare_model, unwrap

NUM_SAMPLES = 32
GLOBAL_BATCH = 8


# -- data and models -----------------------------------------------------------
def regression_data(n: int = NUM_SAMPLES) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)
    return [{"inputs": x[i], "targets": y[i]} for i in range(n)]


class Regressor(BaseModel):
    def __init__(self, dropout: float = 0.0, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(dropout), nn.Linear(8, 1))

    def forward(self, inputs, targets=None, mode="tensor"):
        pred = self.net(inputs)
        if mode == "loss":
            return {"loss": F.mse_loss(pred, targets)}  # a mean: DDP's average then matches
        if mode == "predict":
            return list(pred)
        return pred


def flat_grads(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.detach().flatten().clone() for p in module.parameters()])


def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


class GradRecorder(Regressor):
    """BaseModel.train_step with the update decomposed, recording this rank's gradients
    after each backward (after DDP's reduction, when it ran)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[bool, torch.Tensor]] = []

    def train_step(self, data, optim_wrapper):
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self(**data, mode="loss")  # self(...) runs through DDP by itself
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        update = optim_wrapper.should_update()
        self.records.append((update, flat_grads(self)))
        if update:
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        return log_vars


def gather(obj):
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def world() -> int:
    # From the launcher: the first Runner starts the process group, after its arguments.
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_windows(records: list[tuple[bool, torch.Tensor]], what: str) -> None:
    """Before a window's last micro-batch the ranks hold their own (different) gradients;
    after it, the all-reduced (equal) ones."""
    ranks = gather(records)
    assert len(ranks[0]) >= 4 and any(not u for u, _ in ranks[0]), (what, len(ranks[0]))
    for step, (update, grad) in enumerate(ranks[0]):
        others = [r[step][1] for r in ranks[1:]]
        if update:
            assert all(torch.allclose(grad, o, atol=1e-6) for o in others), (what, step)
        else:
            assert all(not torch.allclose(grad, o, atol=1e-4) for o in others), (what, step)


def assert_same_on_ranks(module: nn.Module, what: str) -> None:
    params = gather(flat_params(module))
    assert all(torch.equal(params[0], p) for p in params[1:]), what


def quiet() -> dict:
    return dict(default_hooks=dict(logger=None))


def per_process_batch() -> int:
    return GLOBAL_BATCH // world()


# -- scenarios -----------------------------------------------------------------
def scenario_ddp(out: Path) -> None:
    """2 processes x batch 4 == 1 process x batch 8 (written for the test to compare), with
    and without accumulation; with accumulation, no_sync leaves the ranks' gradients apart
    until each window's last micro-batch."""
    for counts in (1, 2):
        torch.manual_seed(0)
        model = GradRecorder()
        runner = Runner(
            model,
            None,
            train_dataloader=dict(
                dataset=regression_data(), batch_size=per_process_batch(), shuffle=True
            ),
            train_cfg=dict(by_epoch=True, max_epochs=2),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05), accumulative_counts=counts),
            randomness=dict(seed=0),
            **quiet(),
        )
        if world() > 1:
            assert isinstance(runner.model, DistributedDataParallel)
        runner.train()
        assert_same_on_ranks(model, f"ddp acc={counts}")
        if counts > 1 and world() > 1:
            check_windows(model.records, "ddp")
        if runner.accelerator.is_main_process:
            state = {k: v.cpu() for k, v in model.state_dict().items()}
            torch.save(state, out / f"ddp_acc{counts}_np{world()}.pt")


class CountResults(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend(float(p) for p in data_samples)

    def compute_metrics(self, results):
        return {"count": len(results), "sum": sum(results)}


def scenario_eval13(out: Path) -> None:
    """Runner.val() over 13 samples: the metric sees exactly 13 results."""
    torch.manual_seed(0)
    runner = Runner(
        Regressor(),
        None,
        val_dataloader=dict(dataset=regression_data(13), batch_size=2),
        val_evaluator=CountResults(prefix="val"),
        **quiet(),
    )
    metrics = runner.val()
    assert metrics["val/count"] == 13, metrics
    with torch.no_grad():
        expected = sum(
            float(p)
            for p in unwrap(runner.model).net(
                torch.stack([d["inputs"] for d in regression_data(13)])
            )
        )
    assert abs(metrics["val/sum"] - expected) < 1e-4, (metrics, expected)


class FlipAugment(BaseDataPreprocessor):
    """A deterministic batch augmentation, on only when ``training``."""

    def forward(self, data, training=False):
        data = super().forward(data, training)
        if training:
            data = {**data, "inputs": data["inputs"].flip(-1)}
        return data


class TwoPassWrapper(nn.Module):
    """The seed's CustomDistributedDataParallel: trains on each batch twice, batch
    augmentation on, then off (both losses in one update, so accumulation stays exact)."""

    def __init__(self, model: BaseModel, accelerator) -> None:
        super().__init__()
        self.module = prepare_model(model, accelerator)  # DDP under a launcher
        self.steps = 0

    def train_step(self, data, optim_wrapper):
        model = unwrap(self.module)
        self.steps += 1
        with optim_wrapper.optim_context(self.module):
            augmented = model.data_preprocessor(data, training=True)  # augmentation on
            loss_aug = self.module(**augmented, mode="loss")["loss"]
            plain = model.data_preprocessor(data, training=False)  # augmentation off
            loss_plain = self.module(**plain, mode="loss")["loss"]
        loss, log_vars = model.parse_losses({"loss_aug": loss_aug, "loss_plain": loss_plain})
        optim_wrapper.update_params(loss)
        return log_vars

    def val_step(self, data):
        return unwrap(self.module).val_step(data)

    def test_step(self, data):
        return unwrap(self.module).test_step(data)


def scenario_custom(out: Path) -> None:
    """model_wrapper=callable(model, accelerator): the wrapper's train_step is used."""
    for counts in (1, 2):
        torch.manual_seed(0)
        model = Regressor(data_preprocessor=FlipAugment())
        before = flat_params(model)
        runner = Runner(
            model,
            None,
            train_dataloader=dict(dataset=regression_data(), batch_size=per_process_batch()),
            train_cfg=dict(by_epoch=True, max_epochs=1),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05), accumulative_counts=counts),
            model_wrapper=TwoPassWrapper,
            **quiet(),
        )
        assert isinstance(runner.model, TwoPassWrapper)
        if world() > 1:
            assert isinstance(runner.model.module, DistributedDataParallel)
        runner.train()
        assert runner.model.steps == NUM_SAMPLES // GLOBAL_BATCH
        assert not torch.equal(before, flat_params(model))
        assert_same_on_ranks(model, f"custom acc={counts}")


class TinyGAN(BaseModel):
    """The seed's GAN pattern; `how` picks the variant: 'context' (optim_context on the
    updated child), 'whole' (optim_context on the whole model) or 'bare' (update_params
    without optim_context)."""

    def __init__(self, how: str = "context") -> None:
        super().__init__()
        self.how = how
        self.generator = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 4))
        self.discriminator = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.records: dict[str, list] = {"generator": [], "discriminator": []}

    def forward(self, inputs, targets=None, mode="tensor"):
        return self.generator(inputs)

    def train_step(self, data, optim_wrapper):
        real = self.data_preprocessor(data, True)["inputs"]
        log_vars = self._update("discriminator", optim_wrapper["discriminator"], real)
        self.discriminator.requires_grad_(False)
        log_vars.update(self._update("generator", optim_wrapper["generator"], real))
        self.discriminator.requires_grad_(True)
        return log_vars

    def _losses(self, name: str, real: torch.Tensor) -> dict:
        z = torch.randn(real.shape[0], 2)
        if name == "discriminator":
            with torch.no_grad():
                fake = self.generator(z)
            return {
                "loss_d": F.softplus(self.discriminator(fake))
                + F.softplus(-self.discriminator(real))
            }
        return {"loss_g": F.softplus(-self.discriminator(self.generator(z)))}

    def _update(self, name: str, optim_wrapper, real: torch.Tensor) -> dict:
        module = getattr(self, name)
        if self.how == "bare":
            context = contextlib.nullcontext()
        else:
            context = optim_wrapper.optim_context(module if self.how == "context" else self)
        with context:
            loss, log_vars = self.parse_losses(self._losses(name, real))
        if self.how == "bare":
            optim_wrapper.update_params(loss)
            return {f"{name}.loss": log_vars["loss"]}
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        update = optim_wrapper.should_update()
        self.records[name].append((update, flat_grads(module)))
        if update:
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        return {f"{name}.loss": log_vars["loss"]}


def scenario_gan(out: Path) -> None:
    """model_wrapper='separate' (all spellings): one DDP per child, equal parameters on
    every rank, per-member no_sync with accumulation, plain state-dict keys."""
    variants = [
        ("separate", "context", 1),
        ("MMSeparateDistributedDataParallel", "context", 2),
        (dict(type="MMSeparateDistributedDataParallel", find_unused_parameters=True), "whole", 2),
        ("separate", "bare", 2),
    ]
    member = dict(optimizer=dict(type="Adam", lr=1e-2))
    for wrapper, how, counts in variants:
        torch.manual_seed(0)
        model = TinyGAN(how)
        plain_keys = list(model.state_dict())
        runner = Runner(
            model,
            None,
            train_dataloader=dict(dataset=regression_data(), batch_size=per_process_batch()),
            train_cfg=dict(by_epoch=True, max_epochs=1),
            optim_wrapper=dict(
                generator=dict(member, accumulative_counts=counts),
                discriminator=dict(member, accumulative_counts=counts),
            ),
            model_wrapper=wrapper,
            # Each rank draws its own noise: the generator's gradients differ across ranks.
            randomness=dict(seed=1, diff_rank_seed=True),
            **quiet(),
        )
        assert runner.model is model
        if world() > 1:
            assert isinstance(model.generator, DistributedDataParallel)
            assert isinstance(model.discriminator, DistributedDataParallel)
        before = flat_params(model)
        runner.train()
        assert not torch.equal(before, flat_params(model))
        assert_same_on_ranks(model, f"gan {wrapper} {how}")
        if how != "bare" and counts > 1 and world() > 1:
            for name, records in model.records.items():
                check_windows(records, f"gan {name} {how}")
        assert list(model.state_dict()) == plain_keys, list(model.state_dict())
        fresh = TinyGAN()
        fresh.load_state_dict(model.state_dict())  # strict: a plain model takes the keys
        assert torch.equal(flat_params(fresh), flat_params(model))
        model.load_state_dict(fresh.state_dict())  # and the wrapped model takes them back


class RandomItems(torch.utils.data.Dataset):
    """Each item draws from torch, NumPy and random: what a worker's seeding decides."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        import numpy as np

        return torch.tensor([torch.rand(()).item(), float(np.random.rand()), random.random()])


def scenario_random(out: Path) -> None:
    """diff_rank_seed gives each rank its own stream; loader workers get per-rank seeds;
    everything repeats run to run; without a seed the shards still cover the data once."""
    draws, workers = {}, {}
    for diff in (False, True):
        for attempt in range(2):
            runner = Runner(
                Regressor(),
                None,
                train_dataloader=dict(dataset=RandomItems(), batch_size=2, num_workers=1),
                randomness=dict(seed=7, diff_rank_seed=diff),
                **quiet(),
            )
            draws[diff, attempt] = torch.rand(4)
            workers[diff, attempt] = torch.cat(list(runner.train_dataloader))
    ranks = gather((draws, workers))
    for draws_r, workers_r in ranks:
        for diff in (False, True):  # reproducible run to run, on every rank
            assert torch.equal(draws_r[diff, 0], draws_r[diff, 1])
            assert torch.equal(workers_r[diff, 0], workers_r[diff, 1])
    if len(ranks) > 1:
        (d0, w0), (d1, w1) = ranks[:2]
        assert torch.equal(d0[False, 0], d1[False, 0])  # one seed: one stream
        assert not torch.equal(d0[True, 0], d1[True, 0])  # diff_rank_seed: one per rank
        for diff in (False, True):  # workers differ across ranks in both cases
            assert not torch.isclose(w0[diff, 0], w1[diff, 0]).any(), diff

    weights = []  # training with dropout and diff_rank_seed repeats exactly
    for _ in range(2):
        torch.manual_seed(0)
        model = Regressor(dropout=0.5)
        Runner(
            model,
            None,
            train_dataloader=dict(dataset=regression_data(), batch_size=4, shuffle=True),
            train_cfg=dict(by_epoch=True, max_epochs=2),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
            randomness=dict(seed=3, diff_rank_seed=True),
            **quiet(),
        ).train()
        weights.append(flat_params(model))
        assert_same_on_ranks(model, "dropout run")
    assert torch.equal(weights[0], weights[1])

    # No seed: each process has its own random torch seed, yet the shuffled shards must
    # partition the data (the sampler's seed is shared from rank 0).
    runner = Runner(
        Regressor(),
        None,
        train_dataloader=dict(dataset=list(range(16)), batch_size=2, shuffle=True),
        **quiet(),
    )
    for epoch in range(2):
        runner.train_dataloader.set_epoch(epoch)
        seen = sorted(
            i for shard in gather(torch.cat(list(runner.train_dataloader)).tolist()) for i in shard
        )
        assert seen == list(range(16)), seen


def scenario_fsdp_refused(out: Path) -> None:
    """MMEngine's FSDP wrapper name on a launch that set up DDP is an error naming the
    fix, not a silent fall-back to DDP (Accelerate has no FSDP on the CPU backend)."""
    try:
        Runner(Regressor(), None, model_wrapper="MMFullyShardedDataParallel", **quiet())
    except ValueError as err:
        assert world() > 1 and "--use_fsdp" in str(err), err
    else:
        assert world() == 1


SCENARIOS = {
    "ddp": scenario_ddp,
    "eval13": scenario_eval13,
    "custom": scenario_custom,
    "gan": scenario_gan,
    "random": scenario_random,
    "fsdp_refused": scenario_fsdp_refused,
}


def main() -> None:
    out = Path(sys.argv[1])
    for name in sys.argv[2:]:
        SCENARIOS[name](out)
        if dist.is_initialized():
            dist.barrier()
        rank = dist.get_rank() if dist.is_initialized() else 0
        if rank == 0:
            print(f"PASS {name} processes={world()}", flush=True)
    if dist.is_initialized():
        if dist.get_rank() == 0:
            print(f"BACKEND {dist.get_backend()}", flush=True)
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""engine.dataset: MMEngine's collate functions and samplers, and the Runner's dataloader dicts."""

from __future__ import annotations

import collections
from unittest import mock

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from engine import BaseModel, CheckpointHook, Hook, Runner
from engine.dataset import (
    DefaultSampler,
    InfiniteSampler,
    default_collate,
    pseudo_collate,
    worker_init_fn,
)
from engine.runner.accelerate_setup import make_accelerator, prepare_loader
from engine.runner.build import build_dataloader


class Sample:
    """A stand-in for a data element: movable with .to(), nothing to stack."""

    def __init__(self, label):
        self.label = label

    def to(self, *args, **kwargs):
        return self


def test_pseudo_collate_transposes_without_stacking():
    a, b = torch.zeros(3, 2, 2), torch.ones(3, 4, 4)  # different sizes: cannot be stacked
    batch = pseudo_collate(
        [dict(img=a, label=0, meta=("x", 1)), dict(img=b, label=1, meta=("y", 2))]
    )
    assert batch["img"][0] is a and batch["img"][1] is b
    assert batch["label"] == [0, 1]
    assert batch["meta"] == [["x", "y"], [1, 2]]  # a tuple is transposed into a list
    Point = collections.namedtuple("Point", "x y")
    assert pseudo_collate([Point(1, 2), Point(3, 4)]) == Point([1, 3], [2, 4])


def test_default_collate_stacks_tensors_and_keeps_data_samples_in_a_list():
    s0, s1 = Sample(0), Sample(1)
    batch = default_collate(
        [dict(inputs=torch.tensor([1.0, 2.0]), data_samples=s0, n=3),
         dict(inputs=torch.tensor([3.0, 4.0]), data_samples=s1, n=5)]
    )  # fmt: skip
    assert torch.equal(batch["inputs"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert batch["data_samples"] == [s0, s1]
    assert torch.equal(batch["n"], torch.tensor([3, 5]))
    with pytest.raises(RuntimeError, match="same length"):
        default_collate([[1, 2], [1]])

    class Encoding(dict):  # dict-like with .to(), as transformers' BatchEncoding
        def to(self, device):
            return self

    batch = default_collate(
        [Encoding(ids=torch.tensor([1, 2])), Encoding(ids=torch.tensor([3, 4]))]
    )
    assert isinstance(batch, Encoding) and torch.equal(batch["ids"], torch.tensor([[1, 2], [3, 4]]))


def test_default_sampler_is_a_seeded_permutation_sharded_by_rank():
    sampler = DefaultSampler(range(10), shuffle=True, seed=5)
    for epoch in (0, 3):
        sampler.set_epoch(epoch)
        expected = torch.randperm(10, generator=torch.Generator().manual_seed(5 + epoch))
        assert list(sampler) == expected.tolist()
    shards = []
    for rank in range(3):
        with mock.patch("engine.dataset.sampler.get_dist_info", return_value=(rank, 3)):
            shards.append(list(DefaultSampler(range(10), shuffle=False)))
    # round_up: 12 positions, the first two indices repeated at the end
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]


def test_infinite_sampler_draws_a_new_permutation_each_pass():
    stream = iter(InfiniteSampler(range(4), shuffle=True, seed=2))
    g = torch.Generator().manual_seed(2)
    expected = torch.randperm(4, generator=g).tolist() + torch.randperm(4, generator=g).tolist()
    assert [next(stream) for _ in range(8)] == expected


def test_worker_init_fn_seeds_with_mmengines_formula():
    worker_init_fn(worker_id=1, num_workers=2, rank=3, seed=10)
    drawn = torch.rand(2)
    assert torch.equal(
        drawn, torch.rand(2, generator=torch.Generator().manual_seed(2 * 3 + 1 + 10))
    )


class Indexed(Dataset):
    """Sample i is (its index, a data element): what a batch holds shows the collate."""

    def __init__(self, n=10, scale=1.0):
        self.n, self.scale = n, scale
        self.initialised = False

    def full_init(self):
        self.initialised = True

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return dict(x=torch.tensor([float(i)]) * self.scale, sample=Sample(i))


class Recorder(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.seen = []

    def forward(self, x, sample, mode="tensor"):
        self.seen.append((x, sample))
        x = torch.stack(x) if isinstance(x, list) else x
        return {"loss": (self.w * x).sum()}


def _runner(model, tmp_path, loader, **kwargs):
    return Runner(
        model=model,
        work_dir=tmp_path,
        train_dataloader=loader,
        train_cfg=kwargs.pop("train_cfg", dict(by_epoch=True, max_epochs=2)),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        default_hooks=dict(logger=None, checkpoint=None),
        **kwargs,
    )


def test_runner_honours_sampler_and_collate_dicts(tmp_path):
    model = Recorder()
    loader = dict(
        dataset=dict(type=Indexed, n=10, scale=1.0),
        batch_size=2,
        sampler=dict(type="DefaultSampler", shuffle=True, seed=7),
        collate_fn=dict(type="pseudo_collate"),
    )
    runner = _runner(model, tmp_path, loader, randomness=dict(seed=0))
    assert runner.train_dataloader.dataset.initialised  # full_init() was called
    runner.train()
    # pseudo_collate: lists of per-sample tensors and of data elements, never stacked
    assert all(isinstance(x, list) and len(x) == 2 for x, _ in model.seen)
    order = [int(t) for x, _ in model.seen for t in x]
    # The sampler's seed wins over the run's seed, per epoch as DefaultSampler(seed=7).
    expected = [
        i
        for epoch in (0, 1)
        for i in torch.randperm(10, generator=torch.Generator().manual_seed(7 + epoch)).tolist()
    ]
    assert order == expected
    assert [s.label for _, samples in model.seen for s in samples] == expected


def test_default_collate_dict_and_an_unknown_collate_name(tmp_path):
    loader = build_dataloader(
        dict(dataset=Indexed(4), batch_size=2, collate_fn=dict(type="default_collate")), "loader"
    )
    batch = next(iter(loader))
    assert torch.equal(batch["x"], torch.tensor([[0.0], [1.0]]))
    assert [s.label for s in batch["sample"]] == [0, 1]
    with pytest.raises(ValueError, match="collate_fn type 'stack_all' is unknown"):
        build_dataloader(dict(dataset=Indexed(4), collate_fn=dict(type="stack_all")), "loader")
    with pytest.raises(ValueError, match="sampler DefaultSampler takes shuffle, seed, round_up"):
        build_dataloader(
            dict(dataset=Indexed(4), sampler=dict(type="DefaultSampler", shufle=1)), "l"
        )


def test_a_built_loader_with_default_sampler_is_not_sharded_twice(tmp_path):
    model = Recorder()
    built = DataLoader(Indexed(6), batch_size=3, sampler=DefaultSampler(Indexed(6), seed=3),
                       collate_fn=pseudo_collate)  # fmt: skip
    _runner(model, tmp_path, built, train_cfg=dict(by_epoch=True, max_epochs=1)).train()
    order = [int(t) for x, _ in model.seen for t in x]
    assert order == torch.randperm(6, generator=torch.Generator().manual_seed(3)).tolist()


def test_infinite_sampler_dict_in_an_iteration_loop_cycles_seeded_passes(tmp_path):
    model = Recorder()
    loader = dict(dataset=Indexed(4), batch_size=2, collate_fn=dict(type="pseudo_collate"),
                  sampler=dict(type="InfiniteSampler", shuffle=True, seed=1))  # fmt: skip
    _runner(model, tmp_path, loader, train_cfg=dict(by_epoch=False, max_iters=5)).train()
    order = [int(t) for x, _ in model.seen for t in x]
    passes = [
        torch.randperm(4, generator=torch.Generator().manual_seed(1 + p)).tolist() for p in range(3)
    ]
    assert order == [i for p in passes for i in p][:10]


class Augmented(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.rand(1)  # drawn in the worker: shows how the worker was seeded


def test_worker_init_fn_dict_and_persistent_workers_reach_the_loader():
    acc = make_accelerator()
    cfg = dict(dataset=Augmented(), batch_size=1, num_workers=2, persistent_workers=True,
               worker_init_fn=dict(type="worker_init_fn", seed=10))  # fmt: skip
    loader = prepare_loader(cfg, acc, "train_dataloader")
    assert loader.persistent_workers
    values = [float(b) for b in loader]
    # Worker w loads samples w, w + 2 (batch size 1, round robin), seeded 2 * 0 + w + 10.
    for w in (0, 1):
        g = torch.Generator().manual_seed(w + 10)
        assert values[w::2] == torch.rand(2, generator=g).tolist()
    no_workers = build_dataloader(dict(dataset=Augmented(), persistent_workers=True), "l")
    assert no_workers.persistent_workers is False  # dropped: torch refuses it without workers


class CrashAt(Hook):
    priority = "LOWEST"

    def __init__(self, n):
        self.n = n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == self.n:
            raise KeyboardInterrupt


class Dropout(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 4), nn.Dropout(0.5), nn.Linear(4, 1))

    def forward(self, x, sample, mode="tensor"):
        return {"loss": self.net(torch.stack(x)).pow(2).mean()}


def _dropout_run(work_dir, crash=None, resume=False, sampler="DefaultSampler"):
    torch.manual_seed(0)
    by_epoch = sampler == "DefaultSampler"
    return Runner(
        model=Dropout(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=Indexed(10, 0.1),
            batch_size=2,
            collate_fn=dict(type="pseudo_collate"),
            sampler=dict(type=sampler, shuffle=True),
        ),  # fmt: skip
        train_cfg=dict(by_epoch=True, max_epochs=2)
        if by_epoch
        else dict(by_epoch=False, max_iters=10),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=None, checkpoint=CheckpointHook(interval=3, by_epoch=False)),
        custom_hooks=[CrashAt(crash)] if crash else [],
        resume=resume,
    )


@pytest.mark.parametrize("sampler", ["DefaultSampler", "InfiniteSampler"])
def test_mid_epoch_resume_with_sampler_and_collate_dicts_is_exact(tmp_path, sampler):
    full = _dropout_run(tmp_path / "full", sampler=sampler)
    full.train()
    with pytest.raises(KeyboardInterrupt):  # checkpoint at iter 6: pass 1, batch 1
        _dropout_run(tmp_path / "run", crash=7, sampler=sampler).train()
    resumed = _dropout_run(tmp_path / "run", resume=True, sampler=sampler)
    resumed.train()
    assert resumed.state.iter == 10
    for a, b in zip(full._raw_model.parameters(), resumed._raw_model.parameters()):
        assert torch.equal(a, b)

"""MMEngine's Runner forms for loops, loaders, optimizer constructors and model wrappers:
custom loops registered in LOOPS, ``runner.build_dataloader`` with a real DefaultSampler,
a constructor for a dict of sub-modules, and a wrapper registered in MODEL_WRAPPERS."""

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from engine import BaseModel, Hook, Runner
from engine.dataset import DefaultSampler
from engine.evaluator import Accuracy
from engine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from engine.registry import FUNCTIONS, LOOPS, MODEL_WRAPPERS, OPTIM_WRAPPER_CONSTRUCTORS
from engine.runner import IterBasedTrainLoop, ValLoop


class Net(BaseModel):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.b = nn.Linear(2, 1)

    def forward(self, x, y, mode="tensor"):
        out = self.b(self.a(x)).squeeze(1)
        if mode == "loss":
            return {"loss": (out - y).pow(2).mean()}
        return list(out)


class Pairs(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        x = torch.tensor([i / 8, 1 - i / 8])
        return {"x": x, "y": x.sum() * 0.5}


def make(train_cfg, **kwargs):
    torch.manual_seed(0)
    args = dict(
        model=Net(),
        work_dir=None,
        train_dataloader=dict(dataset=Pairs(), batch_size=2, shuffle=False),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        train_cfg=train_cfg,
        default_hooks=dict(logger=None),
    )
    args.update(kwargs)
    return Runner(**args)


class WarmupThenTrain(IterBasedTrainLoop):
    """A ported MMEngine loop: its own run(), MMEngine's run_iter and dataloader_iterator."""

    def __init__(self, runner, dataloader, max_iters, warmup_iters):
        super().__init__(runner=runner, dataloader=dataloader, max_iters=max_iters)
        self.warmup_iters = warmup_iters

    def run(self):
        self.runner.call_hook("before_train")
        for _ in range(self.warmup_iters):
            self.runner.call_hook("before_warmup_iter")  # an event of this loop's own
        self.runner.call_hook("before_train_epoch")
        while self.runner.iter < self._max_iters:
            self.run_iter(next(self.dataloader_iterator))
        self.runner.call_hook("after_train_epoch")
        self.runner.call_hook("after_train")


class Record(Hook):
    def __init__(self):
        self.warmups, self.batch_idx = 0, []

    def before_warmup_iter(self, runner):
        self.warmups += 1

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.batch_idx.append(batch_idx)


@pytest.fixture
def registered():
    LOOPS.register_module(module=WarmupThenTrain, force=True)
    yield
    LOOPS.module_dict.pop("WarmupThenTrain")


def test_custom_loop_runs_with_the_same_weights_as_engines_loop(registered):
    builtin = make(dict(by_epoch=False, max_iters=6))
    builtin.train()
    record = Record()
    custom = make(dict(type="WarmupThenTrain", max_iters=6, warmup_iters=3), custom_hooks=[record])
    custom.train()
    assert isinstance(custom.train_loop, WarmupThenTrain)
    assert record.warmups == 3
    assert record.batch_idx == [0, 1, 2, 3, 4, 5]  # the iteration, as MMEngine's loop passes
    assert custom.iter == 6 and custom.state.step == 6
    for p, q in zip(custom.model.parameters(), builtin.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_custom_loop_errors():
    with pytest.raises(ValueError, match="NoSuchLoop"):
        make(dict(type="NoSuchLoop", max_iters=2))
    LOOPS.register_module(module=WarmupThenTrain, force=True)
    try:
        with pytest.raises(ValueError, match="needs max_epochs or max_iters"):
            make(dict(type="WarmupThenTrain", warmup_iters=1))
    finally:
        LOOPS.module_dict.pop("WarmupThenTrain")


def test_iteration_based_batch_idx_and_dynamic_val_interval():
    seen = []

    class Watch(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            seen.append((batch_idx, runner.train_loop.val_interval))

    make(
        dict(by_epoch=False, max_iters=6, val_interval=3, dynamic_intervals=[(4, 1)]),
        custom_hooks=[Watch()],
    ).train()
    # the loader has 4 batches: the 5th iteration is batch_idx 4, not 0 (MMEngine's rule);
    # the interval becomes 1 once 4 iterations are done
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3), (4, 1), (5, 1)]


def test_build_dataloader_keeps_mmengines_sampler():
    runner = make(dict(by_epoch=False, max_iters=1))
    FUNCTIONS.register_module(module=lambda batch, scale: batch, name="scaled_collate", force=True)
    try:
        loader = runner.build_dataloader(
            dict(
                dataset=Pairs(),
                batch_size=3,
                sampler=dict(type="DefaultSampler", shuffle=True),
                collate_fn=dict(type="scaled_collate", scale=2),
            ),
            seed=123,
        )
    finally:
        FUNCTIONS.module_dict.pop("scaled_collate")
    assert isinstance(loader.sampler, DefaultSampler)
    assert loader.sampler.seed == 123
    assert loader.collate_fn.keywords == {"scale": 2}
    expected = torch.randperm(8, generator=torch.Generator().manual_seed(123)).tolist()
    assert list(loader.sampler) == expected  # seed + epoch 0, one process
    shared = runner.build_dataloader(
        dict(dataset=Pairs(), sampler=dict(type="DefaultSampler")), seed=123, diff_rank_seed=True
    )
    assert shared.sampler.seed != 123  # drawn and shared by the processes instead
    with pytest.raises(TypeError, match="collate_fn should be a dict or callable object"):
        runner.build_dataloader(dict(dataset=Pairs(), collate_fn="pseudo_collate"))


class PerModuleConstructor:
    """MMEngine's pattern: one DefaultOptimWrapperConstructor per key of the dict."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        self.parts = {k: DefaultOptimWrapperConstructor(v) for k, v in optim_wrapper_cfg.items()}

    def __call__(self, model):
        return OptimWrapperDict(**{k: c(getattr(model, k)) for k, c in self.parts.items()})


class OneStepEach(Net):
    def train_step(self, data, optim_wrapper):
        with optim_wrapper["a"].optim_context(self):
            loss = self(**data, mode="loss")["loss"]
        optim_wrapper["a"].update_params(loss)
        return {"loss": loss.detach()}


def test_constructor_for_a_dict_of_sub_modules():
    OPTIM_WRAPPER_CONSTRUCTORS.register_module(module=PerModuleConstructor, force=True)
    try:
        runner = make(
            dict(by_epoch=False, max_iters=2),
            model=OneStepEach(),
            optim_wrapper=dict(
                a=dict(optimizer=dict(type="SGD", lr=0.1)),
                b=dict(optimizer=dict(type="Adam", lr=0.01)),
                constructor="PerModuleConstructor",
            ),
        )
    finally:
        OPTIM_WRAPPER_CONSTRUCTORS.module_dict.pop("PerModuleConstructor")
    assert isinstance(runner.optim_wrapper, OptimWrapperDict)
    b_group = runner.optim_wrapper["b"].param_groups[0]
    assert b_group["lr"] == 0.01 and "betas" in b_group  # Adam, from the constructor
    assert runner.optim_wrapper["a"].param_groups[0]["params"][0] is runner.model.a.weight
    b_before = runner.model.b.weight.detach().clone()
    runner.train()
    assert torch.equal(runner.model.b.weight, b_before)  # only 'a' stepped


class CountingWrapper(nn.Module):
    built = 0

    def __init__(self, module):
        super().__init__()
        CountingWrapper.built += 1
        self.module = module


def test_registered_model_wrapper_is_skipped_in_one_process():
    MODEL_WRAPPERS.register_module(module=CountingWrapper, force=True)
    built = CountingWrapper.built
    try:
        runner = make(dict(by_epoch=False, max_iters=1), model_wrapper=dict(type="CountingWrapper"))
    finally:
        MODEL_WRAPPERS.module_dict.pop("CountingWrapper")
    assert isinstance(runner.model, Net) and CountingWrapper.built == built
    runner.train()


class Scores(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"x": torch.ones(2), "y": torch.tensor(float(i))}


class CountBatches(ValLoop):
    """A ported val loop: MMEngine's signature, its own run()."""

    def __init__(self, runner, dataloader, evaluator, scale):
        super().__init__(runner, dataloader, evaluator)
        self.scale = scale

    def run(self):
        return {"batches": self.scale * sum(1 for _ in self.dataloader)}


def test_loops_are_built_when_first_used_and_val_cfg_may_name_a_loop():
    LOOPS.register_module(module=CountBatches, force=True)
    try:
        runner = make(
            dict(by_epoch=False, max_iters=2),
            val_dataloader=dict(dataset=Scores(), batch_size=2),
            val_evaluator=Accuracy(),
            val_cfg=dict(type="CountBatches", scale=10),
        )
        assert runner._train_loop == runner.train_cfg  # MMEngine: the cfg until first used
        assert runner.val() == {"batches": 20}
        assert isinstance(runner._train_loop, dict) and runner._test_loop is None
        assert isinstance(runner.train_loop, IterBasedTrainLoop)
        assert runner._train_loop is runner.train_loop
    finally:
        LOOPS.module_dict.pop("CountBatches")


def test_registered_model_wrapper_in_a_distributed_run():
    from types import SimpleNamespace

    from engine.model import MMDistributedDataParallel
    from engine.runner.build_objects import registered_model_wrapper

    MODEL_WRAPPERS.register_module(module=CountingWrapper, force=True)
    MODEL_WRAPPERS.register_module(module=MMDistributedDataParallel, force=True)
    try:
        build = registered_model_wrapper(dict(type="CountingWrapper"), num_processes=2)
        # engine's own names keep engine's path (Accelerate's DDP), registered or not
        assert (
            registered_model_wrapper("MMDistributedDataParallel", 2) == "MMDistributedDataParallel"
        )
    finally:
        MODEL_WRAPPERS.module_dict.pop("CountingWrapper")
        MODEL_WRAPPERS.module_dict.pop("MMDistributedDataParallel")
    model = Net()
    wrapped = build(model, SimpleNamespace(device=torch.device("cpu")))
    assert isinstance(wrapped, CountingWrapper) and wrapped.module is model


def test_dataloader_iterator_reshuffles_each_pass_of_a_prepared_loader():
    runner = make(dict(by_epoch=False, max_iters=1))
    runner.train_dataloader = runner.accelerator.prepare_data_loader(
        torch.utils.data.DataLoader(list(range(6)), batch_size=6, shuffle=True)
    )
    loop = runner.train_loop
    passes = [next(loop.dataloader_iterator).tolist() for _ in range(3)]
    assert all(sorted(p) == list(range(6)) for p in passes)
    assert len({tuple(p) for p in passes}) == 3  # a new order on every pass

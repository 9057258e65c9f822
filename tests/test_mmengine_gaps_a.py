"""MMEngine names and behaviours that ported tests and models rely on: MMLogger warnings,
registered names at the model/optim edges, LinearLR(start_factor=0), MMEngine's DDP
wrappers, `MultiProcessTestCase`."""

from __future__ import annotations

import logging
import unittest

import pytest
import torch
import torch.distributed as dist
from torch import nn

from engine.evaluator import BaseMetric
from engine.logging import MMLogger, current_logger
from engine.logging.logger import MMLogger as MMLoggerByPath
from engine.model import (
    BaseModel,
    BaseTTAModel,
    MMDistributedDataParallel,
    MMSeparateDistributedDataParallel,
    is_model_wrapper,
)
from engine.model.base_model import build_preprocessor
from engine.model.data_preprocessor import BaseDataPreprocessor
from engine.optim import (
    OPTIM_WRAPPER_CONSTRUCTORS,
    OPTIMIZERS,
    DefaultOptimWrapperConstructor,
    OptimWrapper,
    build_optim_wrapper,
)
from engine.optim.optimizer.builder import TORCH_OPTIMIZERS
from engine.optim.scheduler import LinearLR
from engine.optim.scheduler.apply import ScheduleArgumentError
from engine.registry import MODEL_WRAPPERS, MODELS, Registry
from engine.testing._internal import MultiProcessTestCase


@pytest.fixture
def fresh_loggers():
    saved = dict(MMLogger._instance_dict)
    MMLogger._instance_dict.clear()
    yield
    MMLogger._instance_dict.clear()
    MMLogger._instance_dict.update(saved)


class _NoPrefix(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.append(1)

    def compute_metrics(self, results):
        return {"n": len(results)}


def test_warnings_reach_the_current_mmlogger(fresh_loggers):
    assert MMLoggerByPath is MMLogger
    assert current_logger() is logging.getLogger("engine")  # no MMLogger: engine's log
    mm = MMLogger.get_instance("gaps_a")
    assert current_logger() is mm
    with unittest.TestCase().assertLogs(mm, "WARNING") as seen:
        _NoPrefix()
        _NoPrefix(prefix="x").evaluate(size=0)  # nothing processed
    assert len(seen.records) == 2
    assert "prefix is not set" in seen.output[0]
    assert "results is empty" in seen.output[1]


def test_registered_preprocessor_and_tta_module_names():
    class GapsAPreprocessor(BaseDataPreprocessor):
        def __init__(self, scale=1.0):
            super().__init__()
            self.scale = scale

    class GapsAModel(BaseModel):
        def __init__(self, data_preprocessor=None):
            super().__init__(data_preprocessor=data_preprocessor)
            self.linear = nn.Linear(1, 1)

        def forward(self, inputs, data_samples=None, mode="tensor"):
            return inputs

    class MeanTTA(BaseTTAModel):
        def merge_preds(self, data_samples_list):
            return data_samples_list

    MODELS.register_module(module=GapsAPreprocessor, force=True)
    MODELS.register_module(module=GapsAModel, force=True)
    try:
        pre = build_preprocessor(dict(type="GapsAPreprocessor", scale=3.0))
        assert type(pre) is GapsAPreprocessor and pre.scale == 3.0
        tta = MeanTTA(dict(type="GapsAModel"))
        assert type(tta.module) is GapsAModel
    finally:
        MODELS.module_dict.pop("GapsAPreprocessor")
        MODELS.module_dict.pop("GapsAModel")
    with pytest.raises(ValueError, match="'Nope' is unknown; accepted"):
        build_preprocessor(dict(type="Nope"))
    with pytest.raises(TypeError, match="got 'Nope'"):
        MeanTTA(dict(type="Nope"))


def test_linear_lr_start_factor_zero():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5)
    scheduler = LinearLR(opt, start_factor=0, end_factor=1.0, end=3)
    assert opt.param_groups[0]["lr"] == 0.0  # 0.5 * 0 at the first count
    state = scheduler.state_dict()
    again = LinearLR(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5), start_factor=0)
    again.load_state_dict(state)
    assert again.start_factor == 0 and again.last_step == scheduler.last_step
    opt.step()
    with pytest.raises(ScheduleArgumentError, match="start_factor=0.*cannot rise from 0"):
        scheduler.step()
    with pytest.raises(ScheduleArgumentError, match="start_factor=-0.1"):
        LinearLR(start_factor=-0.1)


def test_registered_optimizer_and_constructor_names():
    model = nn.Linear(2, 1)

    class GapsASGD(torch.optim.SGD):
        pass

    class Conv1Constructor(DefaultOptimWrapperConstructor):
        def __call__(self, model, accelerator=None):
            mult = self.paramwise_cfg.get("weight_lr_mult", 1.0)  # a key of its own
            groups = [
                {"params": [p], "lr": self.base_lr * (mult if n == "weight" else 1.0)}
                for n, p in model.named_parameters()
            ]
            optimizer = torch.optim.SGD(groups, lr=self.base_lr)
            return OptimWrapper(optimizer)

    OPTIMIZERS.register_module(module=GapsASGD, force=True)
    OPTIM_WRAPPER_CONSTRUCTORS.register_module(module=Conv1Constructor, force=True)
    try:
        wrapper = build_optim_wrapper(model, dict(optimizer=dict(type="GapsASGD", lr=0.1)))
        assert type(wrapper.optimizer) is GapsASGD
        wrapper = build_optim_wrapper(
            model,
            dict(
                optimizer=dict(type="SGD", lr=0.1),
                constructor="Conv1Constructor",
                paramwise_cfg=dict(weight_lr_mult=5.0),
            ),
        )
        assert [g["lr"] for g in wrapper.optimizer.param_groups] == [0.5, 0.1]
    finally:
        OPTIMIZERS.module_dict.pop("GapsASGD")
        OPTIM_WRAPPER_CONSTRUCTORS.module_dict.pop("Conv1Constructor")
    with pytest.raises(KeyError, match="constructor 'Nope' is unknown"):
        build_optim_wrapper(model, dict(optimizer=dict(type="SGD", lr=0.1), constructor="Nope"))
    with pytest.raises(ValueError, match="unknown keys \\['weight_lr_mult'\\]"):
        DefaultOptimWrapperConstructor(
            dict(optimizer=dict(type="SGD", lr=0.1)), dict(weight_lr_mult=5.0)
        )
    assert {"SGD", "Adam", "AdamW", "Optimizer"} <= set(TORCH_OPTIMIZERS)


class _Regression(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, target=None, mode="tensor"):
        out = self.linear(inputs)
        if mode == "loss":
            return {"loss": ((out - target) ** 2).mean()}
        return out


@pytest.fixture
def one_process_group(tmp_path):
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


def test_mm_ddp_steps_match_the_plain_model(one_process_group):
    torch.manual_seed(0)
    plain = _Regression()
    wrapped_model = _Regression()
    wrapped_model.load_state_dict(plain.state_dict())
    ddp = MMDistributedDataParallel(module=wrapped_model, detect_anomalous_params=True)
    data = dict(inputs=torch.randn(4, 2), target=torch.randn(4, 1))
    plain_log = plain.train_step(data, OptimWrapper(torch.optim.SGD(plain.parameters(), lr=0.1)))
    ddp_log = ddp.train_step(data, OptimWrapper(torch.optim.SGD(ddp.parameters(), lr=0.1)))
    torch.testing.assert_close(ddp_log["loss"], plain_log["loss"])
    for a, b in zip(plain.parameters(), wrapped_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    torch.testing.assert_close(ddp.val_step(data), plain.val_step(data))
    assert is_model_wrapper(ddp)
    separate = MMSeparateDistributedDataParallel(_Regression())
    assert isinstance(separate.module.linear, MMDistributedDataParallel)


def test_is_model_wrapper_reads_registries():
    child = Registry("gaps_a_wrappers", parent=MODEL_WRAPPERS)

    class Holder(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    assert not is_model_wrapper(Holder(nn.Linear(1, 1)))
    child.register_module(module=Holder)
    try:
        assert is_model_wrapper(Holder(nn.Linear(1, 1)))  # found below MODEL_WRAPPERS
        assert is_model_wrapper(Holder(nn.Linear(1, 1)), registry=child)
        assert not is_model_wrapper(nn.DataParallel(nn.Linear(1, 1)), registry=child)
    finally:
        MODEL_WRAPPERS.children.pop("gaps_a_wrappers")


class TestAllReduceAcrossRanks(MultiProcessTestCase):
    def setUp(self):
        super().setUp()
        self._spawn_processes()

    def test_sum_of_ranks(self):
        dist.init_process_group(
            "gloo", init_method=f"file://{self.file_name}", rank=self.rank, world_size=2
        )
        value = torch.tensor([float(self.rank + 1)])
        dist.all_reduce(value)
        assert value.item() == 3.0  # 1 + 2
        dist.destroy_process_group()


def test_a_failing_rank_fails_the_test():
    class Failing(MultiProcessTestCase):
        def setUp(self):
            super().setUp()
            self._spawn_processes()

        def test_rank_one_fails(self):
            assert self.rank != 1, "rank one says no"

    result = unittest.TestResult()
    Failing("test_rank_one_fails").run(result)
    assert len(result.failures) == 1
    assert "rank 1" in result.failures[0][1] and "rank one says no" in result.failures[0][1]

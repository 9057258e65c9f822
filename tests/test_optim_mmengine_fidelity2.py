"""MMEngine fidelity of the optimisation edge: the registries know torch's optimizers and
engine's wrappers, constructors and schedulers; DefaultScope picks a port's registry;
OptimWrapper's ``base_lr``, ``message_hub`` and logged warnings; ZeroRedundancyOptimizer."""

from __future__ import annotations

import unittest

import pytest
import torch
import torch.distributed as dist
from torch import nn

from engine.logging import MessageHub, MMLogger
from engine.optim import (
    BaseOptimWrapper,
    DefaultOptimWrapperConstructor,
    LinearLR,
    MultiStepLR,
    OptimWrapper,
    OptimWrapperDict,
    ReduceOnPlateauLR,
    ZeroRedundancyOptimizer,
    build_optim_wrapper,
)
from engine.optim.accumulation import AccumulationWindows
from engine.optim.scheduler import apply_schedules, build_schedule
from engine.registry import (
    OPTIM_WRAPPER_CONSTRUCTORS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    PARAM_SCHEDULERS,
    DefaultScope,
    Registry,
)
from engine.testing._internal import MultiProcessTestCase


def _two_groups(lr: float = 0.1) -> torch.optim.SGD:
    w, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.zeros(1))
    return torch.optim.SGD([{"params": [w]}, {"params": [b], "lr": lr * 10}], lr=lr, momentum=0.9)


# -- registries ---------------------------------------------------------------------------
def test_registries_know_torch_and_engine_names_without_registering_them():
    param = nn.Parameter(torch.zeros(3))
    sgd = OPTIMIZERS.build(dict(type="SGD", params=[param], lr=0.25, momentum=0.5))
    assert type(sgd) is torch.optim.SGD and sgd.defaults["lr"] == 0.25
    assert OPTIMIZERS.get("AdamW") is torch.optim.AdamW and "Optimizer" not in OPTIMIZERS
    assert OPTIMIZERS.get("ZeroRedundancyOptimizer") is ZeroRedundancyOptimizer
    assert OPTIM_WRAPPERS.get("OptimWrapper") is OptimWrapper
    assert PARAM_SCHEDULERS.get("LinearLR") is LinearLR
    # nothing is registered: the tables hold only what ported code registers
    assert "SGD" not in OPTIMIZERS.module_dict and len(OPTIM_WRAPPER_CONSTRUCTORS) == 0


def test_constructor_and_scheduler_built_by_name_give_mmengine_values():
    model = nn.Sequential(nn.Linear(2, 2))
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type="DefaultOptimWrapperConstructor",
            optim_wrapper_cfg=dict(optimizer=dict(type="SGD", lr=0.1, weight_decay=0.01)),
            paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0),
        )
    )
    assert isinstance(ctor, DefaultOptimWrapperConstructor)
    ow = ctor(model)
    # weight: lr 0.1, wd 0.01; bias: lr 0.1 * 2, wd 0.01 * 0
    assert [(g["lr"], g["weight_decay"]) for g in ow.optimizer.param_groups] == [
        (0.1, 0.01),
        (0.2, 0.0),
    ]
    scheduler = PARAM_SCHEDULERS.build(
        dict(type="LinearLR", optimizer=ow, start_factor=0.5, end=2, by_epoch=False)
    )
    assert isinstance(scheduler, LinearLR)
    assert ow.get_lr() == {"base_lr": [0.05], "lr": [0.05, 0.1]}  # every value times 0.5


def test_a_scope_registry_shadows_and_the_scope_is_restored():
    class MySGD(torch.optim.SGD):
        pass

    child = Registry("optimizer", parent=OPTIMIZERS, scope="fid2_scope")
    child.register_module(name="SGD", module=MySGD)
    try:
        before = DefaultScope.get_current_instance()
        assert OPTIMIZERS.get("SGD") is torch.optim.SGD
        assert OPTIMIZERS.get("fid2_scope.SGD") is MySGD  # 'scope.Name' reaches the child
        assert child.get("AdamW") is torch.optim.AdamW  # a child falls back to its parent
        with DefaultScope.overwrite_default_scope("fid2_scope"):
            assert DefaultScope.get_current_instance().scope_name == "fid2_scope"
            assert OPTIMIZERS.get("SGD") is MySGD
            ow = DefaultOptimWrapperConstructor(dict(optimizer=dict(type="SGD", lr=0.1)))(
                nn.Linear(1, 1)
            )
            assert type(ow.optimizer) is MySGD
        assert DefaultScope.get_current_instance() is before
        assert OPTIMIZERS.get("SGD") is torch.optim.SGD
        with OPTIMIZERS.switch_scope_and_registry("fid2_scope") as registry:
            assert registry is child
    finally:
        OPTIMIZERS.children.pop("fid2_scope")


def test_registry_scope_is_inferred_from_the_calling_package():
    assert OPTIMIZERS.scope == "engine"
    assert Registry("thing").scope == __name__.split(".")[0]


# -- OptimWrapper's MMEngine attributes ---------------------------------------------------
def test_base_lr_follows_the_schedule_without_multipliers():
    ow = OptimWrapper(_two_groups(lr=0.1))
    assert isinstance(ow, BaseOptimWrapper) and len(ow.param_groups) == 3
    assert ow.get_lr() == {"base_lr": [0.1], "lr": [0.1, 1.0]}
    # LinearLR reaches 1 at update end - 1 = 3 (MMEngine's total_iters = end - begin - 1),
    # so at update 2 the factor is 0.5 + 0.5 * 2 / 3 = 5 / 6
    apply_schedules(ow, [LinearLR(start_factor=0.5, end=4, by_epoch=False)], epoch=0, step=2)
    lrs = ow.get_lr()
    assert lrs["base_lr"] == pytest.approx([0.1 * 5 / 6], rel=1e-12)
    assert lrs["lr"] == pytest.approx([0.1 * 5 / 6, 1.0 * 5 / 6], rel=1e-12)
    # one param group: MMEngine reports only 'lr'
    single = OptimWrapper(torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.3))
    assert single.get_lr() == {"lr": [0.3]} and single.base_param_settings is None


def test_base_param_settings_travel_with_the_state_dict():
    ow = OptimWrapper(_two_groups())
    LinearLR(ow, start_factor=0.5, end=4)  # the constructor's step sets lr to 0.05
    state = ow.state_dict()
    assert state["base_param_settings"]["lr"] == pytest.approx(0.05)
    assert set(state) == {"state", "param_groups", "base_param_settings"}
    fresh = OptimWrapper(_two_groups())
    assert fresh.get_lr()["base_lr"] == [0.1]
    fresh.load_state_dict(state)
    assert fresh.get_lr()["base_lr"] == pytest.approx([0.05])
    assert fresh.optimizer.state_dict()["param_groups"][0]["lr"] == pytest.approx(0.05)


def test_plateau_min_value_per_real_group_bounds_the_base_group_by_the_last():
    ow = OptimWrapper(_two_groups(lr=0.1))
    sched = ReduceOnPlateauLR(ow, monitor="loss", patience=0, factor=0.1, min_value=[0.005, 0.02])
    for _ in range(3):
        sched.step()
        sched.step(dict(loss=1.0))  # the first sets the best; the next two reduce
    # 0.1 -> 0.01 -> 0.005 (its floor); 1.0 -> 0.1 -> 0.02 (its floor);
    # base 0.1 -> 0.02: the base group's floor is the last value given, as in MMEngine
    assert ow.get_lr()["lr"] == pytest.approx([0.005, 0.02])
    assert ow.get_lr()["base_lr"] == pytest.approx([0.02])
    with pytest.raises(ValueError, match="expected one per param group \\(2\\)"):
        ReduceOnPlateauLR(ow, monitor="loss", min_value=[0.1, 0.1, 0.1])


def test_message_hub_is_the_current_one():
    hub = MessageHub.get_instance("fid2_optim_hub")
    ow = OptimWrapper(torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1))
    assert ow.message_hub is hub
    other = MessageHub.get_instance("fid2_optim_hub_assigned")
    ow.message_hub = other
    assert ow.message_hub is other


def test_count_status_warnings_reach_the_current_mmlogger():
    logger = MMLogger.get_instance("fid2_optim_logger")
    ow = OptimWrapper(torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1), accumulative_counts=3)
    with pytest.raises(AssertionError, match="no logs"):  # at a window's start: no warning
        with unittest_assert_logs(logger):
            ow.initialize_count_status(nn.Linear(1, 1), 0, 100)
    with unittest_assert_logs(logger) as cm:
        ow.initialize_count_status(nn.Linear(1, 1), 2, 100)
    assert len(cm.records) == 1 and "Resumed iteration number" in cm.records[0].msg
    assert ow._remainder_counts == 1 and ow._inner_count == 2  # 100 % 3, placed at 2
    with unittest_assert_logs(logger) as cm:
        ow.initialize_count_status(nn.BatchNorm1d(1), 0, 99)
    assert len(cm.records) == 1 and "Gradient accumulative" in cm.records[0].msg


def unittest_assert_logs(logger):
    return unittest.TestCase().assertLogs(logger, level="WARNING")


def test_bad_configs_are_also_assertion_errors_as_in_mmengine():
    opt = torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1)
    with pytest.raises(TypeError, match="If `clip_grad` is not None") as info:
        OptimWrapper(opt, clip_grad=[])
    assert isinstance(info.value, AssertionError)
    with pytest.raises(ValueError, match="`optim_wrapper_cfg` must contain") as info:
        build_optim_wrapper(nn.Linear(1, 1), {})
    assert isinstance(info.value, AssertionError)


def test_accumulation_windows_divide_the_last_window_by_its_size():
    windows = AccumulationWindows(4)
    windows.place(init_counts=0, max_counts=30)
    # 7 full windows (28 micro-batches), then one of 2
    assert [windows.divisor(c) for c in (0, 27, 28, 29)] == [4, 4, 2, 2]
    windows.count = 29  # inside the last window, whose end is the run's end
    assert not windows.ends_window() and windows.next_ends_window()
    windows.count = 30
    assert windows.ends_window()
    ow = OptimWrapper(torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1), accumulative_counts=4)
    ow._inner_count = 5  # MMEngine's private names are views of the windows
    assert ow.windows.count == 5 and ow.inner_count == 5 and ow._max_counts == -1


# -- builders reach what ports register ----------------------------------------------------
class _TwoMembers(nn.Module):
    def __init__(self):
        super().__init__()
        self.gen, self.disc = nn.Linear(2, 2), nn.Linear(2, 1)


class _PerMemberConstructor:
    """MMEngine's multi-optimizer pattern: one constructor over a dict keyed by sub-module."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        self.cfgs = optim_wrapper_cfg

    def __call__(self, model):
        return OptimWrapperDict(
            **{
                key: DefaultOptimWrapperConstructor(dict(cfg))(getattr(model, key))
                for key, cfg in self.cfgs.items()
            }
        )


def test_a_registered_constructor_builds_a_dict_keyed_by_sub_module():
    OPTIM_WRAPPER_CONSTRUCTORS.register_module(module=_PerMemberConstructor)
    try:
        ow = build_optim_wrapper(
            _TwoMembers(),
            dict(
                gen=dict(optimizer=dict(type="SGD", lr=0.01)),
                disc=dict(optimizer=dict(type="Adam", lr=0.02)),
                constructor="_PerMemberConstructor",
            ),
        )
    finally:
        OPTIM_WRAPPER_CONSTRUCTORS.module_dict.pop("_PerMemberConstructor")
    assert isinstance(ow, OptimWrapperDict)
    assert (
        type(ow["gen"].optimizer) is torch.optim.SGD
        and type(ow["disc"].optimizer) is torch.optim.Adam
    )
    assert ow.get_lr() == {"gen.lr": [0.01], "disc.lr": [0.02]}


def test_registered_wrapper_and_schedule_subclasses_are_built_by_name():
    class FidWrapper(OptimWrapper):
        pass

    class FidMultiStep(MultiStepLR):
        pass

    OPTIM_WRAPPERS.register_module(module=FidWrapper)
    PARAM_SCHEDULERS.register_module(module=FidMultiStep)
    try:
        model = nn.Linear(1, 1)
        ow = build_optim_wrapper(
            model,
            dict(type="FidWrapper", optimizer=dict(type="SGD", lr=0.5), accumulative_counts=2),
        )
        schedule = build_schedule(dict(type="FidMultiStep", milestones=[1], gamma=0.1))
    finally:
        OPTIM_WRAPPERS.module_dict.pop("FidWrapper")
        PARAM_SCHEDULERS.module_dict.pop("FidMultiStep")
    assert type(ow) is FidWrapper and ow.accumulative_counts == 2
    assert type(schedule) is FidMultiStep
    apply_schedules(ow, [schedule], epoch=1, step=0)
    assert ow.get_lr() == {"lr": [pytest.approx(0.05)]}  # 0.5 * 0.1 from epoch 1
    with pytest.raises(ValueError, match="subclass registered in PARAM_SCHEDULERS"):
        build_schedule(dict(type="FidMultiStep", milestones=[1]))  # unregistered again


# -- ZeroRedundancyOptimizer --------------------------------------------------------------
class TestZeroRedundancyOptimizer(MultiProcessTestCase):
    def setUp(self):
        super().setUp()
        self._spawn_processes()

    def test_two_processes_equal_plain_sgd(self):
        dist.init_process_group(
            "gloo", init_method=f"file://{self.file_name}", rank=self.rank, world_size=2
        )
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1))
        reference = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1))
        reference.load_state_dict(model.state_dict())
        initial_bias = model[0].bias.detach().clone()
        cfg = dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=0.01)
        ow = build_optim_wrapper(
            model,
            dict(
                optimizer=dict(type="ZeroRedundancyOptimizer", optimizer_type=cfg["type"], **{
                    k: v for k, v in cfg.items() if k != "type"
                }),
                paramwise_cfg=dict(custom_keys={"0.bias": dict(lr_mult=0.0)}),
            ),
        )  # fmt: skip
        assert isinstance(ow.optimizer, ZeroRedundancyOptimizer)
        groups = [{"params": [p], "lr": 0.0 if n == "0.bias" else 0.1} for n, p in
                  reference.named_parameters()]  # fmt: skip
        plain = torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=0.01)
        x = torch.arange(24.0).reshape(6, 4) / 10  # the same batch on both processes
        for _ in range(3):
            ow.update_params(model(x).pow(2).mean())
            loss = reference(x).pow(2).mean()
            loss.backward()
            plain.step()
            plain.zero_grad()
        for (name, p), q in zip(model.named_parameters(), reference.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)
        torch.testing.assert_close(model[0].bias.detach(), initial_bias)  # lr_mult 0: unchanged
        state = ow.optimizer.state_dict()  # a collective: every process calls it
        if self.rank == 0:
            assert len(state["state"]) == 4  # every parameter's momentum, gathered
        else:
            assert state == {}
        with pytest.raises(ValueError, match="optimizer_type 'Nope'"):
            ZeroRedundancyOptimizer(model.parameters(), optimizer_type="Nope", lr=0.1)
        dist.destroy_process_group()

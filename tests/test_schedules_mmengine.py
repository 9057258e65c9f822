"""Chained schedules against MMEngine's recursion (written out here by hand), MMEngine's
stateful schedulers, exact epoch boundaries under accumulation, and ReduceOnPlateau."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

from engine import BaseMetric, Hook, Runner
from engine.hooks.param_scheduler_hook import ParamSchedulerHook
from engine.optim.scheduler import (
    CosineAnnealingLR,
    CosineRestartLR,
    ExponentialLR,
    LinearLR,
    LinearParamScheduler,
    MultiStepLR,
    PolyLR,
    ReduceOnPlateauLR,
    StepLR,
    apply_schedules,
)
from engine.optim.scheduler.apply import ScheduleChain, epoch_end_updates
from models import ParamModel


def _sgd(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


# MMEngine's chainable forms, written out from its documentation of each scheduler:
# the value at step t (counted from `begin`) from the value at t - 1.
def multistep(v, t, milestones, gamma):
    return v * gamma ** milestones.count(t)


def poly(v, t, total, eta_min, power):
    return v if t == 0 else (v - eta_min) * (1 - 1 / (total - t + 1)) ** power + eta_min


def exponential(v, t, gamma):
    return v if t == 0 else v * gamma


def cosine(v, t, T, eta_min, base):
    if t == 0:
        return v
    if (t - 1 - T) % (2 * T) == 0:
        return v + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
    ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
    return ratio * (v - eta_min) + eta_min


def test_multistep_then_poly_ends_at_polys_absolute_eta_min():
    base, epochs = 0.1, 10
    schedules = [MultiStepLR([2], gamma=0.1), PolyLR(eta_min=1e-3, end=epochs)]
    v, expected = base, []
    for e in range(epochs):
        v = multistep(v, e, [2], 0.1)
        v = poly(v, e, epochs - 1, 1e-3, 1.0)
        expected.append(v)
    got = []
    for e in range(epochs):
        opt = _sgd(base)
        apply_schedules(opt, schedules, epoch=e, step=0)
        got.append(opt.param_groups[0]["lr"])
    assert got == pytest.approx(expected, rel=1e-9)
    # The product of factors (engine before this change) ends at 1e-4.
    assert got[-1] == pytest.approx(1e-3, rel=1e-9)


def test_exponential_then_cosine_with_eta_min_matches_the_recursion():
    base, epochs, T = 0.1, 12, 12
    schedules = [ExponentialLR(0.9), CosineAnnealingLR(T_max=T, eta_min=0.01)]
    v, expected = base, []
    for e in range(epochs):
        v = cosine(exponential(v, e, 0.9), e, T, 0.01, base)
        expected.append(v)
    opt, chain_state = _sgd(base), {}
    got = []
    for e in range(epochs):
        apply_schedules(opt, schedules, epoch=e, step=0, chains=chain_state)
        got.append(opt.param_groups[0]["lr"])
    assert got == pytest.approx(expected, rel=1e-9)
    factor_product = (
        base
        * 0.9 ** (epochs - 1)
        * CosineAnnealingLR(T_max=T, eta_min=0.01).factor_at(epochs - 1, base)
    )
    assert abs(got[-1] - factor_product) > 1e-3  # the old multiplied factors were wrong


def test_a_chain_resumed_at_any_count_equals_the_run_that_stepped():
    schedules = [LinearLR(start_factor=0.1, end=4, by_epoch=False), CosineAnnealingLR(T_max=6)]
    ends = epoch_end_updates(10, 4, max_counts=60)
    stepped, fresh_values = ScheduleChain(schedules, ends), []
    walk = [(0, 0), (0, 1), (0, 2), (1, 2), (1, 3), (1, 4), (1, 5), (2, 5), (2, 6), (3, 9)]
    stepped_values = [stepped.values([0.2], epoch=e, step=s)[0] for e, s in walk]
    for e, s in walk:
        fresh_values.append(ScheduleChain(schedules, ends).values([0.2], epoch=e, step=s)[0])
    assert stepped_values == fresh_values  # bit for bit


def test_stateful_scheduler_is_a_torch_style_scheduler_with_the_same_values():
    opt = _sgd(0.05)
    scheduler = LinearLR(opt, start_factor=0.5, end=5)
    assert scheduler.last_step == 0 and scheduler.get_last_value() == [0.025]
    values = []
    for _ in range(6):
        opt.step()
        scheduler.step()
        values.append(opt.param_groups[0]["lr"])
    pure = []
    for e in range(1, 7):
        ref = _sgd(0.05)
        apply_schedules(ref, [LinearLR(start_factor=0.5, end=5)], epoch=e, step=0)
        pure.append(ref.param_groups[0]["lr"])
    assert values == pytest.approx(pure, rel=1e-12)
    assert values == pytest.approx([0.03125, 0.0375, 0.04375, 0.05, 0.05, 0.05])
    state = scheduler.state_dict()
    # MMEngine counts last_step inside [begin, end) only: 0..4.
    assert "optimizer" not in state and state["last_step"] == 4
    other = LinearLR(_sgd(0.05), start_factor=0.5, end=5)
    other.load_state_dict(state)
    assert other.last_step == 4


def test_generic_param_scheduler_and_build_iter_from_epoch():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, weight_decay=1e-2)
    wd = LinearParamScheduler(opt, "weight_decay", start_factor=0.5, end=3)
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(5e-3)
    opt.step(), wd.step()
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(7.5e-3)
    it = StepLR.build_iter_from_epoch(_sgd(), step_size=2, epoch_length=5)
    assert (it.step_size, it.by_epoch) == (10, False)
    with pytest.raises(TypeError, match="should be an Optimizer"):
        StepLR("not an optimizer", step_size=1)


def test_cosine_restart_values():
    # periods 4 then 5, restart weights 1 and 0.5, eta_min 0 (MMEngine's documented example)
    s = CosineRestartLR(periods=[4, 5], restart_weights=[1, 0.5], eta_min=0.0)
    got = []
    for e in range(10):
        opt = _sgd(0.05)
        apply_schedules(opt, [s], epoch=e, step=0)
        got.append(opt.param_groups[0]["lr"])
    expected = [0.05 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]
    expected += [0.025 * (1 + math.cos(math.pi * k / 5)) / 2 for k in range(5)]
    assert got[:9] == pytest.approx(expected, rel=1e-9)
    assert got[9] == got[8]  # held after the last period


def _runner(tmp_path, recorder, **kwargs):
    data = [{"x": torch.tensor([0.0])}] * 10
    return Runner(
        model=ParamModel(),
        work_dir=tmp_path,
        train_dataloader=DataLoader(data, batch_size=None),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=1.0), accumulative_counts=4),
        custom_hooks=[recorder],
        default_hooks=dict(logger=None, checkpoint=None),
        **kwargs,
    )


class LrAfterIter(Hook):
    priority = "LOWEST"  # after the scheduler hook

    def __init__(self):
        self.lrs = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.lrs.append(runner.optim_wrapper.get_lr()["lr"][0])


def test_converted_milestone_fires_where_the_epoch_really_ends(tmp_path, engine_log):
    # 10 batches, windows of 4: epochs end after updates 2, 5, 7 (10, 20, 30 iterations).
    recorder = LrAfterIter()
    milestone = dict(type="MultiStepLR", milestones=[2], gamma=0.1, convert_to_iter_based=True)
    runner = _runner(
        tmp_path, recorder, train_cfg=dict(by_epoch=True, max_epochs=3), param_scheduler=[milestone]
    )
    runner.train()
    changed = [i + 1 for i in range(1, 30) if recorder.lrs[i] != recorder.lrs[i - 1]]
    assert changed == [20]  # the update at iteration 20 is the 5th: epoch 2's end
    assert recorder.lrs[-1] == pytest.approx(0.1)
    said = [m for m in engine_log if "one schedule step is one update of 4 micro-batches" in m]
    assert len(said) == 1


def test_run_long_converted_cosine_ends_at_the_end_of_the_run(tmp_path):
    recorder = LrAfterIter()
    cosine = dict(type="CosineAnnealingLR", eta_min=0.0, convert_to_iter_based=True)
    runner = _runner(
        tmp_path, recorder, train_cfg=dict(by_epoch=True, max_epochs=3), param_scheduler=[cosine]
    )
    runner.train()
    # 30 iterations, windows of 4: 8 updates (the last of 2 micro-batches); T_max = 8.
    assert runner.state.step == 8
    # The lr after update k (iterations 4, 8, ..., 28, 30) is cos over T_max = 8 updates;
    # the old 10 // 4 = 2 updates per epoch gave T_max = 6, ending with 2 updates left.
    after_updates = [recorder.lrs[i - 1] for i in (4, 8, 12, 16, 20, 24, 28)]
    expected = [(1 + math.cos(math.pi * k / 8)) / 2 for k in range(1, 8)]
    assert after_updates == pytest.approx(expected, rel=1e-9)


def test_reduce_on_plateau_in_a_run_steps_on_metrics_and_resumes():
    opt = _sgd(1.0)
    plateau = ReduceOnPlateauLR(monitor="loss", patience=1, factor=0.5)
    runner = SimpleNamespace(
        optim_wrapper=opt, state=SimpleNamespace(epoch=0, step=0), train_dataloader=None
    )
    runner.state.total_iters = lambda n: None
    hook = ParamSchedulerHook([plateau])
    hook.before_train(runner)
    lrs = []
    for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.97, 0.96, 0.99], start=1):
        runner.state.epoch = epoch
        hook.after_val_epoch(runner, {"loss": loss})
        lrs.append(opt.param_groups[0]["lr"])
    # Bad epochs at 0.95 and 0.97 (2 > patience 1): halve; then 0.96, 0.99: halve again.
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]
    saved = hook.state_dict()
    assert saved["plateaus"]["/0"]["reductions"] == 2
    resumed_opt = _sgd(1.0)
    resumed = ParamSchedulerHook([plateau])
    resumed.load_state_dict(saved)
    runner.optim_wrapper = resumed_opt
    resumed.before_train(runner)
    assert resumed_opt.param_groups[0]["lr"] == 0.25


def test_stateful_reduce_on_plateau_matches_the_hook():
    opt = _sgd(1.0)
    scheduler = ReduceOnPlateauLR(opt, monitor="loss", patience=1, factor=0.5)
    lrs = []
    for loss in [1.0, 0.9, 0.95, 0.97, 0.96, 0.99]:
        scheduler.step()
        scheduler.step({"loss": loss})
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]
    assert scheduler.state_dict()["tracker"]["reductions"] == 2


class ConstantLoss(BaseMetric):
    """A validation 'loss' that never improves, so the plateau schedule reduces."""

    default_prefix = "val"

    def process(self, data_batch, data_samples):
        self.results.append(1.0)

    def compute_metrics(self, results):
        return {"loss": 1.0}


class LrAtEpochStart(Hook):
    def __init__(self):
        self.lrs = []

    def before_train_epoch(self, runner):
        self.lrs.append(runner.optim_wrapper.get_lr()["lr"][0])


def _plateau_runner(work_dir, max_epochs, resume=False):
    recorder = LrAtEpochStart()
    data = [{"x": torch.tensor([1.0])}] * 2
    runner = Runner(
        model=ParamModel(),
        work_dir=work_dir,
        train_dataloader=DataLoader(data, batch_size=None),
        val_dataloader=DataLoader(data, batch_size=None),
        val_evaluator=ConstantLoss(),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=1.0)),
        param_scheduler=[
            dict(type="ReduceOnPlateauLR", monitor="val/loss", patience=0, factor=0.5)
        ],
        custom_hooks=[recorder],
        default_hooks=dict(logger=None),
        resume=resume,
    )
    runner.train()
    return runner, recorder


def test_reduce_on_plateau_in_a_runner_saves_and_restores_its_state(tmp_path):
    full, full_lrs = _plateau_runner(tmp_path / "full", 4)
    # Validation after epochs 1..4 says 1.0 each time: best at 1, bad at 2 and 3 (> patience
    # 0); the one after epoch 4 is past `end` (filled with max_epochs), as in MMEngine.
    assert full_lrs.lrs == [1.0, 1.0, 0.5, 0.25]
    assert full.optim_wrapper.get_lr()["lr"] == [0.25]
    _plateau_runner(tmp_path / "part", 3)
    # The epoch-3 checkpoint is written at that epoch's end, before its validation: it
    # holds the verdicts of validations 1 and 2 (one reduction).
    saved = json.loads((tmp_path / "part" / "epoch_3" / "engine_state.json").read_text())
    plateau = saved["hooks"]["ParamSchedulerHook"]["plateaus"]["/0"]
    assert plateau == dict(best=1.0, num_bad_epochs=0, cooldown_counter=0, reductions=1)
    resumed, resumed_lrs = _plateau_runner(tmp_path / "part", 4, resume=True)
    assert resumed_lrs.lrs == [0.5]  # restored: a fresh tracker would give 1.0

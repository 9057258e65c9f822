"""Schedules: hand-computed values, composition, conversion, resume and bad arguments."""

import math
from types import SimpleNamespace

import pytest
import torch

from engine.optim.scheduler.param_scheduler import (
    INF,
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingMomentum,
    ExponentialLR,
    ExponentialMomentum,
    LinearLR,
    LinearMomentum,
    MultiStepLR,
    OneCycleLR,
    PolyLR,
    StepLR,
    StepMomentum,
    apply_schedules,
    build_schedule,
)


def _sgd(*lrs, momentum=0.9):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=momentum)


def _lrs(schedules, counts, lr=0.05, by="epoch"):
    """The lr that `apply_schedules` sets at each count, on one optimizer."""
    opt, out = _sgd(lr), []
    for c in counts:
        apply_schedules(opt, schedules, epoch=c if by == "epoch" else 0, step=c)
        out.append(opt.param_groups[0]["lr"])
    return out


def test_constant_lr_restores_at_end_minus_one_like_mmengine():
    # MMEngine: total_iters = end - begin - 1 = 3, so the value is back at count 3.
    assert _lrs([ConstantLR(factor=0.5, end=4)], range(6)) == pytest.approx(
        [0.025, 0.025, 0.025, 0.05, 0.05, 0.05]
    )
    assert _lrs([ConstantLR(factor=0.5, begin=2)], range(5)) == pytest.approx(
        [0.05, 0.05, 0.025, 0.025, 0.025]
    )


def test_linear_lr_pinned_example():
    got = _lrs([LinearLR(start_factor=0.5, begin=1, end=6)], range(7))
    assert got == pytest.approx([0.05, 0.025, 0.03125, 0.0375, 0.04375, 0.05, 0.05])


def test_linear_lr_to_an_end_factor():
    # total = end - begin - 1 = 2: factors 0.25, 0.5, 0.75, then 0.75 held.
    got = _lrs([LinearLR(start_factor=0.25, end_factor=0.75, end=3)], range(5), lr=0.1)
    assert got == pytest.approx([0.025, 0.05, 0.075, 0.075, 0.075])


def test_step_lr():
    got = _lrs([StepLR(step_size=2, gamma=0.5)], range(6), lr=0.1)
    assert got == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    # Counted from begin=1; from end=5 on the factor at count 4 (t=3: 0.5) is held.
    got = _lrs([StepLR(2, gamma=0.5, begin=1, end=5)], range(7), lr=0.1)
    assert got == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])


def test_multi_step_lr():
    # A repeated milestone decays twice.
    got = _lrs([MultiStepLR(milestones=[1, 3, 3], gamma=0.1)], range(5), lr=1.0)
    assert got == pytest.approx([1.0, 0.1, 0.1, 0.001, 0.001])
    # Milestones count from begin: milestone 1 with begin=2 acts at count 3.
    got = _lrs([MultiStepLR([1], begin=2)], range(5), lr=1.0)
    assert got == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.1])


def test_exponential_lr():
    assert _lrs([ExponentialLR(gamma=0.5)], range(4), lr=0.8) == pytest.approx([0.8, 0.4, 0.2, 0.1])
    got = _lrs([ExponentialLR(0.5, end=3)], range(5), lr=0.8)
    assert got == pytest.approx([0.8, 0.4, 0.2, 0.2, 0.2])


def test_cosine_annealing_lr():
    # (1 + cos(pi t / 4)) / 2 with cos(pi/4) = 0.70710678
    got = _lrs([CosineAnnealingLR(T_max=4)], range(5), lr=1.0)
    assert got == pytest.approx([1.0, 0.85355339, 0.5, 0.14644661, 0.0], abs=1e-8)
    # eta_min is absolute: 0.2 + 0.8 * (1 + cos(pi/2)) / 2 = 0.6
    got = _lrs([CosineAnnealingLR(T_max=2, eta_min=0.2)], range(3), lr=1.0)
    assert got == pytest.approx([1.0, 0.6, 0.2])
    # T_max defaults to end - begin = 2; eta_min = 0.1 * 0.5; held from count 1 on.
    got = _lrs([CosineAnnealingLR(eta_min_ratio=0.1, end=2)], range(3), lr=0.5)
    assert got == pytest.approx([0.5, 0.275, 0.275])


def test_cosine_eta_min_is_absolute_per_group():
    opt = _sgd(0.1, 1.0)
    apply_schedules(opt, [CosineAnnealingLR(T_max=2, eta_min=0.05)], epoch=2, step=0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.05])


def test_poly_lr():
    # total = 4: 0.1 + 0.9 * (1 - t/4)**2 -> 1, 0.60625, 0.325, 0.15625, 0.1
    got = _lrs([PolyLR(eta_min=0.1, power=2.0, end=5)], range(6), lr=1.0)
    assert got == pytest.approx([1.0, 0.60625, 0.325, 0.15625, 0.1, 0.1])


def test_one_cycle_lr_linear():
    # start 1/10 = 0.1, final 0.1/100 = 0.001; rise ends at 0.3*10-1 = 2, fall from 2 to 9.
    s = OneCycleLR(
        1.0,
        total_steps=10,
        anneal_strategy="linear",
        div_factor=10,
        final_div_factor=100,
        by_epoch=False,
    )
    got = _lrs([s], [0, 1, 2, 3, 5, 9, 12], lr=0.05, by="step")
    # fall: 1 - 0.999 * (t - 2) / 7
    assert got == pytest.approx([0.1, 0.55, 1.0, 0.85728571, 0.57185714, 0.001, 0.001])


def test_one_cycle_lr_three_phase():
    # Phases end at 2 (0.1 -> 1), 4 (1 -> 0.1) and 9 (0.1 -> 0.001).
    s = OneCycleLR(
        1.0,
        total_steps=10,
        anneal_strategy="linear",
        div_factor=10,
        final_div_factor=100,
        three_phase=True,
    )
    got = _lrs([s], [1, 3, 4, 5, 9], lr=0.05)
    assert got == pytest.approx([0.55, 0.55, 0.1, 0.0802, 0.001])


@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_lr_matches_torch(three_phase):
    param = torch.nn.Parameter(torch.zeros(1))
    ref_opt = torch.optim.SGD([param], lr=0.05)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        ref_opt, max_lr=0.4, total_steps=17, cycle_momentum=False, three_phase=three_phase
    )
    expected = []
    for _ in range(17):
        expected.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    s = OneCycleLR(0.4, total_steps=17, three_phase=three_phase, by_epoch=False)
    assert _lrs([s], range(17), by="step") == pytest.approx(expected)


def test_overlapping_schedules_pinned_example():
    schedules = [LinearLR(start_factor=0.5, end=5), MultiStepLR(milestones=[3, 6, 9])]
    expected = [0.025, 0.03125, 0.0375, 0.004375, 0.005, 0.005, 0.0005, 0.0005, 0.0005, 0.00005]
    assert _lrs(schedules, range(10)) == pytest.approx(expected)


def test_iteration_warmup_with_epoch_decay():
    # Warm-up counts updates (0.5 -> 1 over updates 0..2), decay counts epochs.
    schedules = [LinearLR(start_factor=0.5, end=3, by_epoch=False), StepLR(1, gamma=0.1)]
    opt, got = _sgd(1.0), []
    for epoch, step in [(0, 0), (0, 1), (1, 2), (1, 5), (2, 8)]:
        apply_schedules(opt, schedules, epoch=epoch, step=step)
        got.append(opt.param_groups[0]["lr"])
    assert got == pytest.approx([0.5, 0.75, 0.1, 0.1, 0.01])


def test_iteration_schedules_count_updates_not_micro_batches():
    # Two micro-batches per update: the schedule must see updates 0, 1, 2.
    opt, updates, got = _sgd(1.0), 0, []
    for micro_batch in range(6):
        if micro_batch % 2 == 1:
            apply_schedules(opt, [StepLR(1, gamma=0.5, by_epoch=False)], epoch=9, step=updates)
            got.append(opt.param_groups[0]["lr"])
            updates += 1
    assert got == pytest.approx([1.0, 0.5, 0.25])


def test_momentum_on_sgd():
    opt, got = _sgd(0.05, momentum=0.9), []
    for epoch in range(4):
        apply_schedules(opt, [LinearMomentum(start_factor=0.5, end=3)], epoch=epoch, step=0)
        got.append(opt.param_groups[0]["momentum"])
    assert got == pytest.approx([0.45, 0.675, 0.9, 0.9])
    assert opt.param_groups[0]["initial_momentum"] == 0.9
    assert opt.param_groups[0]["lr"] == 0.05 and "initial_lr" not in opt.param_groups[0]


def test_momentum_on_adam_betas():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1, betas=(0.8, 0.999))
    apply_schedules(opt, [StepMomentum(step_size=1, gamma=0.5)], epoch=2, step=0)
    assert opt.param_groups[0]["betas"] == pytest.approx((0.2, 0.999))
    assert opt.param_groups[0]["initial_momentum"] == 0.8


def test_momentum_needs_momentum_or_betas():
    opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="no 'momentum'"):
        apply_schedules(opt, [ExponentialMomentum(0.5)], epoch=1, step=0)


def test_to_iter_based_step_lr_is_equivalent_at_epoch_boundaries():
    by_epoch = StepLR(2, gamma=0.1, begin=1, end=5, convert_to_iter_based=True)
    by_iter = by_epoch.to_iter_based(4)
    assert (by_iter.step_size, by_iter.begin, by_iter.end) == (8, 4, 20)
    assert not by_iter.by_epoch and not by_iter.convert_to_iter_based
    # Update 12 is in epoch 3: t = 12 - 4 = 8 -> one decay.
    assert by_iter.factor_at(12, 1.0) == pytest.approx(0.1)
    for step in range(30):
        assert by_iter.factor_at(step, 1.0) == by_epoch.factor_at(step // 4, 1.0)


def test_to_iter_based_is_smooth_within_epochs():
    by_iter = LinearLR(start_factor=0.5, end=2, convert_to_iter_based=True).to_iter_based(2)
    # end = 4 updates, total = 3: 0.5 + 0.5 * t / 3
    assert _lrs([by_iter], range(5), lr=1.0, by="step") == pytest.approx(
        [0.5, 0.66666667, 0.83333333, 1.0, 1.0]
    )


def test_to_iter_based_scales_every_count():
    assert MultiStepLR([1, 2]).to_iter_based(4).milestones == (4, 8)
    assert CosineAnnealingLR(T_max=3).to_iter_based(4).T_max == 12
    cos = CosineAnnealingLR(begin=1, end=3).to_iter_based(4)
    assert (cos.T_max, cos.begin, cos.end) == (None, 4, 12)
    assert OneCycleLR(1.0, total_steps=5).to_iter_based(3).total_steps == 15
    assert ExponentialLR(0.9).to_iter_based(7).end == INF


def test_unconverted_schedule_is_refused():
    with pytest.raises(ValueError, match="to_iter_based"):
        apply_schedules(_sgd(0.1), [StepLR(1, convert_to_iter_based=True)], epoch=0, step=0)
    with pytest.raises(ValueError, match="by_epoch"):
        StepLR(1, by_epoch=False).to_iter_based(4)
    with pytest.raises(ValueError, match="updates_per_epoch=0"):
        StepLR(1).to_iter_based(0)


def test_resume_gives_the_same_value():
    schedules = [LinearLR(start_factor=0.1, end=3, by_epoch=False), CosineAnnealingLR(T_max=10)]
    stepped = _sgd(0.2)
    for update in range(8):
        apply_schedules(stepped, schedules, epoch=update // 3, step=update)
    # A fresh optimizer asked for the same counts gets the same value ...
    fresh = _sgd(0.2)
    apply_schedules(fresh, schedules, epoch=7 // 3, step=7)
    assert fresh.param_groups[0]["lr"] == stepped.param_groups[0]["lr"]
    # ... and so does one loaded from a checkpoint, whatever lr it was built with.
    resumed = _sgd(123.0)
    resumed.load_state_dict(stepped.state_dict())
    apply_schedules(resumed, schedules, epoch=8 // 3, step=8)
    apply_schedules(stepped, schedules, epoch=8 // 3, step=8)
    assert resumed.param_groups[0]["lr"] == stepped.param_groups[0]["lr"]
    # 0.2 * cos-factor(t=2, T_max=10)
    assert stepped.param_groups[0]["lr"] == pytest.approx(0.2 * (1 + math.cos(math.pi / 5)) / 2)


def test_accepts_any_object_with_param_groups():
    wrapper = SimpleNamespace(param_groups=[{"lr": 0.1}, {"lr": 0.3}])
    apply_schedules(wrapper, [ExponentialLR(0.5)], epoch=1, step=0)
    assert [g["lr"] for g in wrapper.param_groups] == pytest.approx([0.05, 0.15])


def test_build_schedule():
    cfg = dict(type="LinearLR", start_factor=0.5, by_epoch=False, begin=0, end=500)
    assert build_schedule(cfg) == LinearLR(start_factor=0.5, by_epoch=False, end=500)
    assert cfg["type"] == "LinearLR"  # the caller's dict is left alone
    assert build_schedule(dict(type=StepLR, step_size=3)) == StepLR(3)
    momentum = build_schedule(dict(type="CosineAnnealingMomentum", T_max=4))
    assert momentum == CosineAnnealingMomentum(T_max=4) and momentum.param_name == "momentum"
    built = PolyLR(end=10)
    assert build_schedule(built) is built
    with pytest.raises(ValueError, match="type='WarmupLR'.*LinearLR"):
        build_schedule(dict(type="WarmupLR"))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: StepLR(1, begin=5, end=5), "end=5"),
        (lambda: StepLR(1, begin=-1), "begin=-1"),
        (lambda: StepLR(1, by_epoch=False, convert_to_iter_based=True), "convert_to_iter_based"),
        (lambda: ConstantLR(factor=0.0), "factor=0.0"),
        (lambda: LinearLR(start_factor=-0.1), "start_factor=-0.1"),
        (lambda: LinearLR(start_factor=1.5), "start_factor=1.5"),
        (lambda: LinearLR(end_factor=-0.1), "end_factor=-0.1"),
        (lambda: StepLR(0), "step_size=0"),
        (lambda: StepLR(2, gamma=0.0), "gamma=0.0"),
        (lambda: MultiStepLR([-1, 2]), "milestones"),
        (lambda: ExponentialLR(-1.0), "gamma=-1.0"),
        (lambda: CosineAnnealingLR(T_max=0), "T_max=0"),
        (lambda: CosineAnnealingLR(eta_min=0.0, eta_min_ratio=0.1), "eta_min_ratio=0.1"),
        (lambda: PolyLR(power=0.0), "power=0.0"),
        (lambda: OneCycleLR(0.0), "eta_max=0.0"),
        (lambda: OneCycleLR(1.0, total_steps=0), "total_steps=0"),
        (lambda: OneCycleLR(1.0, pct_start=1.5), "pct_start=1.5"),
        (lambda: OneCycleLR(1.0, anneal_strategy="exp"), "anneal_strategy='exp'.*'cos'"),
        (lambda: OneCycleLR(1.0, div_factor=0), "div_factor=0"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()

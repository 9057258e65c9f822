"""ParamSchedulerHook() without schedules steps ``runner.param_schedulers`` as MMEngine does."""

import warnings
from types import SimpleNamespace

import pytest
import torch

from engine.hooks import ParamSchedulerHook
from engine.optim import MultiStepLR, StepLR, _ParamScheduler


def _optimizer() -> torch.optim.SGD:
    return torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)


def test_iteration_and_epoch_schedulers_step_at_their_events():
    by_iter_opt, by_epoch_opt = _optimizer(), _optimizer()
    by_iter = StepLR(by_iter_opt, step_size=2, gamma=0.1, by_epoch=False)
    by_epoch = MultiStepLR(by_epoch_opt, milestones=[1], gamma=0.5)
    assert isinstance(by_iter, _ParamScheduler)
    runner = SimpleNamespace(param_schedulers=dict(a=[by_iter], b=[by_epoch]))
    hook = ParamSchedulerHook()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step() before optimizer.step(): irrelevant here
        for i in range(4):
            hook.after_train_iter(runner, i)
    # 4 iteration steps of StepLR(step_size=2, gamma=0.1): 1 -> 0.1 (step 2) -> 0.01 (step 4)
    assert by_iter_opt.param_groups[0]["lr"] == pytest.approx(0.01)
    assert by_epoch_opt.param_groups[0]["lr"] == 1.0  # epoch schedulers wait for the epoch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hook.after_train_epoch(runner)
    assert by_epoch_opt.param_groups[0]["lr"] == 0.5  # milestone 1 reached: 1.0 * 0.5
    assert by_iter_opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_param_schedulers_not_a_list_is_a_type_error():
    runner = SimpleNamespace(param_schedulers=StepLR(_optimizer(), step_size=1))
    with pytest.raises(TypeError, match="list of ParamScheduler"):
        ParamSchedulerHook().after_train_epoch(runner)

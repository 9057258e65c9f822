"""MMEngine's public Runner.build_* / register_hook* methods (engine.runner.runner_builders)."""

import pytest
import torch
from torch.utils.data import DataLoader

from engine import BaseMetric, Hook, Runner
from engine.evaluator import Evaluator
from engine.hooks import IterTimerHook, RuntimeInfoHook
from engine.optim import MultiStepLR, OptimWrapper, OptimWrapperDict, StepLR
from engine.registry import RUNNERS
from engine.runner import EpochBasedTrainLoop, IterBasedTrainLoop, LogProcessor, ValLoop
from models import ParamModel


class Seen(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend([0] * len(data_batch["x"]))

    def compute_metrics(self, results):
        return {"acc": 1.0}


def _runner(name: str, max_epochs: int = 1) -> Runner:
    def loader(n):
        return DataLoader([{"x": torch.tensor([1.0])}] * n, batch_size=4)

    return Runner(
        model=ParamModel(), work_dir=None, train_dataloader=loader(8), val_dataloader=loader(4),
        val_evaluator=Seen(), train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)), experiment_name=name,
    )  # fmt: skip


def test_build_model_evaluator_and_log_processor():
    runner = _runner("builders_a")
    module = torch.nn.Linear(1, 1)
    assert runner.build_model(module) is module
    with pytest.raises(TypeError, match="model should be"):
        runner.build_model("Linear")
    metrics = [Seen(), Seen()]
    evaluator = runner.build_evaluator(metrics)
    assert isinstance(evaluator, Evaluator) and evaluator.metrics[1] is metrics[1]
    assert runner.build_evaluator(evaluator) is evaluator
    with pytest.raises(TypeError, match="evaluator should be"):
        runner.build_evaluator(Seen())  # MMEngine's rule for this method: wrap it in a list
    processor = runner.build_log_processor(dict(window_size=3, by_epoch=False))
    assert isinstance(processor, LogProcessor) and processor.window_size == 3
    assert runner.build_log_processor(processor) is processor
    with pytest.raises(TypeError, match="log_processor should be"):
        runner.build_log_processor("LogProcessor")


def test_build_loops_over_the_runs_loaders():
    runner = _runner("builders_b")
    assert isinstance(runner.build_train_loop(dict(by_epoch=False, max_iters=3)),
                      IterBasedTrainLoop)  # fmt: skip
    loop = runner.build_train_loop(dict(type="EpochBasedTrainLoop", max_epochs=3))
    assert isinstance(loop, EpochBasedTrainLoop) and runner.build_train_loop(loop) is loop
    with pytest.raises(RuntimeError, match="Only one"):
        runner.build_train_loop(dict(type="EpochBasedTrainLoop", by_epoch=True, max_epochs=3))
    with pytest.raises(TypeError, match="should be"):
        runner.build_train_loop("EpochBasedTrainLoop")
    val = runner.build_val_loop({})
    assert isinstance(val, ValLoop) and val.dataloader is runner.val_dataloader
    assert val.run() == {"acc": 1.0}


def test_scale_lr_by_global_batch():
    runner = _runner("builders_c")
    wrapper = OptimWrapper(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.01))
    runner.scale_lr(wrapper, dict(base_batch_size=16, enable=True))
    # global batch 4 (one process) over base 16: 0.01 * 4 / 16
    assert wrapper.optimizer.param_groups[0]["lr"] == pytest.approx(0.0025)
    runner.scale_lr(wrapper, dict(base_batch_size=16, enable=False))
    assert wrapper.optimizer.param_groups[0]["lr"] == pytest.approx(0.0025)
    with pytest.raises(AssertionError, match="base_batch_size"):
        runner.scale_lr(wrapper, dict(enable=True))


def test_register_hook_orders_by_priority_and_message_hub_logger_names():
    runner = _runner("builders_d")
    runner._hooks = []
    runner.register_hook(dict(type="IterTimerHook"))
    runner.register_hook(RuntimeInfoHook())  # VERY_HIGH: goes first
    runner.register_hook(Hook(), priority="VERY_LOW")
    assert [type(h) for h in runner._hooks] == [RuntimeInfoHook, IterTimerHook, Hook]
    with pytest.raises(TypeError, match="hook should be an instance of Hook or dict"):
        runner.register_hook(["IterTimerHook"])
    assert runner.build_message_hub().instance_name == "builders_d"
    assert runner.build_message_hub(dict(name="other")).instance_name == "other"
    assert runner.build_logger(name="builders_log").instance_name == "builders_log"
    assert runner.build_visualizer(None).instance_name == "builders_d"


def test_build_param_scheduler_binds_stateful_schedulers():
    runner = _runner("builders_e", max_epochs=3)  # 2 iterations per epoch (8 samples / 4)
    runner.optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.1))
    with pytest.raises(AssertionError, match="should be called before"):
        runner.build_param_scheduler(dict(type="MultiStepLR", milestones=[1]))
    runner.optim_wrapper = runner.build_optim_wrapper(dict(optimizer=dict(type="SGD", lr=0.1)))
    (step,) = runner.build_param_scheduler(dict(type="MultiStepLR", milestones=[1], gamma=0.1))
    assert isinstance(step, MultiStepLR) and step.end == 3  # the open end is max_epochs
    step.step()  # epoch 1 reaches milestone 1: 0.1 * 0.1
    assert runner.optim_wrapper.param_groups[0]["lr"] == pytest.approx(0.01)
    (conv,) = runner.build_param_scheduler(
        dict(type="MultiStepLR", milestones=[1, 2], begin=1, convert_to_iter_based=True)
    )
    # epochs [1, 3) at 2 iterations per epoch: iterations [2, 6)
    assert not conv.by_epoch and (conv.begin, conv.end) == (2, 6)


def test_build_optim_wrapper_dict_of_built_wrappers():
    runner = _runner("builders_f")
    a = OptimWrapper(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.01))
    b = OptimWrapper(torch.optim.Adam(torch.nn.Linear(1, 1).parameters(), lr=0.02))
    both = runner.build_optim_wrapper(dict(a=a, b=b))
    assert isinstance(both, OptimWrapperDict) and both["a"] is a and both["b"] is b
    with pytest.raises(ValueError, match="mixing built wrappers and dicts"):
        runner.build_optim_wrapper(dict(a=a, b=dict(optimizer=dict(type="SGD", lr=0.1))))
    with pytest.raises(TypeError, match="optimizer wrapper should be"):
        runner.build_optim_wrapper("SGD")
    runner.optim_wrapper = both
    groups = runner.build_param_scheduler([dict(type="StepLR", step_size=1)])
    assert sorted(groups) == ["a", "b"] and isinstance(groups["b"][0], StepLR)


def test_get_hooks_info_lists_each_events_hooks_in_call_order():
    runner = _runner("builders_g")
    runner._hooks = []
    runner.register_hook(dict(type="IterTimerHook"))
    runner.register_hook(RuntimeInfoHook())
    info = runner.get_hooks_info()
    block = (
        "after_train_iter:\n(VERY_HIGH   ) RuntimeInfoHook" + " " * 20 + "\n"
        "(NORMAL      ) IterTimerHook" + " " * 22 + "\n -------------------- "
    )
    assert block in info
    assert "after_run" not in info  # neither hook handles it


def test_runners_registry_builds_runner_type_from_cfg():
    class MyRunner(Runner):
        pass

    RUNNERS.register_module(module=MyRunner, force=True)
    cfg = dict(model=ParamModel(), work_dir=None, experiment_name="builders_h")
    assert type(RUNNERS.build(cfg)) is Runner  # runner_type defaults to 'Runner'
    assert type(RUNNERS.build({**cfg, "runner_type": "MyRunner"})) is MyRunner
    with pytest.raises(KeyError, match="not registered"):
        RUNNERS.build({**cfg, "runner_type": "Missing"})

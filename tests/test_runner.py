import copy
import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from engine import Accuracy, BaseModel, Hook, LoggerHook, Runner, run_loop
from models import MMEngineToyModel, ParamModel
from run_files import run_file


def toy_dataset(n=50):
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(n, 1, generator=g)
    return [(x, 2 * x + 1) for x in xs]


def test_seed_runner_example_matches_plain_pytorch(tmp_path):
    torch.manual_seed(3)
    model = MMEngineToyModel()
    reference = copy.deepcopy(model.linear)
    train_dataloader = DataLoader(toy_dataset(), batch_size=2)
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=train_dataloader,
        train_cfg=dict(by_epoch=True, max_epochs=5),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
    )
    runner.train()
    opt = torch.optim.SGD(reference.parameters(), lr=0.01)
    for _ in range(5):
        for img, label in DataLoader(toy_dataset(), batch_size=2):
            feat = reference(img)
            loss = (feat - label).pow(2).mean() + (feat - label).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert torch.allclose(model.linear.weight, reference.weight, atol=1e-6)
    assert torch.allclose(model.linear.bias, reference.bias, atol=1e-6)
    assert runner.state.epoch == 5 and runner.state.iter == 125 and runner.state.step == 125


class RecordParam(Hook):
    def __init__(self):
        self.values = []
        self.lrs = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.values.append(runner.model.p.item())

    def before_train_epoch(self, runner):
        self.lrs.append(runner.optim_wrapper.get_lr()["lr"][0])


def test_accumulation_updates_after_3_6_9_10_last_divides_by_one(tmp_path):
    # micro-batch i has gradient i (1..10): windows (1,2,3) (4,5,6) (7,8,9) (10)
    data = [{"x": torch.tensor([float(i)])} for i in range(1, 11)]
    recorder = RecordParam()
    runner = Runner(
        model=ParamModel(),
        work_dir=tmp_path,
        train_dataloader=DataLoader(data, batch_size=None),
        train_cfg=dict(by_epoch=False, max_iters=10),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=1.0), accumulative_counts=3),
        custom_hooks=[recorder],
        default_hooks=dict(logger=None),
    )
    runner.train()
    expected = [0, 0, -2, -2, -2, -7, -7, -7, -15, -25]
    assert recorder.values == pytest.approx(expected)
    assert runner.state.step == 4


def test_schedules_driven_by_the_runner(tmp_path):
    recorder = RecordParam()
    runner = Runner(
        model=ParamModel(),
        work_dir=tmp_path,
        train_dataloader=DataLoader([{"x": torch.tensor([0.0])}] * 2, batch_size=None),
        train_cfg=dict(by_epoch=True, max_epochs=10),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
        param_scheduler=[
            dict(type="LinearLR", start_factor=0.5, end=5),
            dict(type="MultiStepLR", milestones=[3, 6, 9]),
        ],
        custom_hooks=[recorder],
    )
    runner.train()
    expected = [0.025, 0.03125, 0.0375, 0.004375, 0.005, 0.005, 0.0005, 0.0005, 0.0005, 0.00005]
    assert recorder.lrs == pytest.approx(expected, rel=1e-9)


class Classifier(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 3)

    def forward(self, x, y, mode):
        logits = self.net(x)
        if mode == "loss":
            return {
                "loss_cls": nn.functional.cross_entropy(logits, y),
                "acc": (logits.argmax(1) == y).float().mean(),
            }
        return (logits, y)


def classification_data(n=60):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x[:, :3].argmax(1)
    return list(zip(x, y))


def test_validation_metrics_logging_and_val_test_entry_points(tmp_path):
    runner = Runner(
        model=Classifier(),
        work_dir=tmp_path,
        train_dataloader=dict(dataset=classification_data(), batch_size=8, shuffle=True),
        val_dataloader=dict(dataset=classification_data(30), batch_size=8),
        test_dataloader=dict(dataset=classification_data(30), batch_size=8),
        train_cfg=dict(by_epoch=True, max_epochs=20, val_interval=5),
        optim_wrapper=dict(
            optimizer=dict(type="SGD", lr=0.5, momentum=0.9), clip_grad=dict(max_norm=10)
        ),
        val_evaluator=Accuracy(topk=(1,)),
        test_evaluator=[dict(type="Accuracy")],
        default_hooks=dict(logger=LoggerHook(interval=4)),
        randomness=dict(seed=0),
    )
    metrics = runner.train()
    assert metrics["accuracy/top1"] >= 80.0
    assert runner.val()["accuracy/top1"] == metrics["accuracy/top1"]
    assert runner.test()["accuracy/top1"] == metrics["accuracy/top1"]
    records = [
        json.loads(line) for line in run_file(tmp_path, "scalars.jsonl").read_text().splitlines()
    ]
    assert any("grad_norm" in r for r in records)
    assert (
        sum(1 for r in records if r.get("mode") == "val") >= 4
    )  # epochs 5, 10, 15, 20 and the val() call


def test_run_loop_in_a_plain_process_with_a_torch_optimizer():
    model = Classifier()
    loader = DataLoader(classification_data(), batch_size=8, shuffle=True)
    state = run_loop(model, loader, torch.optim.SGD(model.parameters(), lr=0.5), max_epochs=3)
    assert (state.epoch, state.iter) == (3, 24)
    state = run_loop(model, loader, dict(optimizer=dict(type="SGD", lr=0.5)), max_iters=5)
    assert state.iter == 5


def test_iteration_based_training_cycles_the_data_and_validates_on_interval(tmp_path):
    seen = []

    class CountVal(Hook):
        def after_val_epoch(self, runner, metrics=None):
            seen.append(runner.iter)

    runner = Runner(
        model=Classifier(),
        work_dir=tmp_path,
        train_dataloader=dict(dataset=classification_data(16), batch_size=8, shuffle=True),
        val_dataloader=dict(dataset=classification_data(8), batch_size=8),
        train_cfg=dict(by_epoch=False, max_iters=7, val_interval=3),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        val_evaluator=Accuracy(),
        custom_hooks=[CountVal()],
    )
    runner.train()
    assert seen == [3, 6, 7]
    assert runner.state.epoch == 3 and runner.state.inner_iter == 1  # 7 batches of 2 per pass


def test_log_with_sends_scalars_to_accelerate_trackers(tmp_path):
    from accelerate.tracking import GeneralTracker

    class ListTracker(GeneralTracker):
        name = "list"
        requires_logging_directory = False

        def __init__(self):
            super().__init__()
            self.records = []

        @property
        def tracker(self):
            return self.records

        def store_init_configuration(self, values):
            self.records.append(("config", values))

        def log(self, values, step=None, **kwargs):
            self.records.append((step, values))

    tracker = ListTracker()
    runner = Runner(
        model=Classifier(),
        work_dir=tmp_path,
        train_dataloader=dict(dataset=classification_data(16), batch_size=4),
        train_cfg=dict(by_epoch=False, max_iters=8),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=LoggerHook(interval=4)),
        log_with=[tracker],
    )
    runner.train()
    steps = [step for step, values in tracker.records if step != "config"]
    assert steps == [4, 8]
    assert "train/loss" in tracker.records[-1][1]


def test_mmengine_interval_helpers_fire_on_the_right_iterations(tmp_path):
    fired = []

    class Every3(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if self.every_n_train_iters(runner, 3):
                fired.append(runner.iter)
            if self.is_last_train_iter(runner):
                fired.append("last")

    Runner(
        model=Classifier(),
        work_dir=None,
        train_dataloader=dict(dataset=classification_data(16), batch_size=4),
        train_cfg=dict(by_epoch=False, max_iters=7),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        custom_hooks=[Every3()],
    ).train()
    # MMEngine's runner.iter in after_train_iter is the index of the finished iteration:
    # every_n_train_iters(3) fires after the 3rd and 6th, whose indices are 2 and 5.
    assert fired == [2, 5, "last"]


def test_mmengine_model_wrapper_cfg_is_an_alias(tmp_path):
    from engine.model.wrappers import MMSeparateDistributedDataParallel

    kwargs = dict(
        model=Classifier(),
        work_dir=None,
        train_dataloader=dict(dataset=classification_data(8), batch_size=4),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
    )
    runner = Runner(**kwargs, model_wrapper_cfg=MMSeparateDistributedDataParallel)
    assert isinstance(runner.model, MMSeparateDistributedDataParallel)
    runner.train()
    with pytest.raises(ValueError, match="not both"):
        Runner(**kwargs, model_wrapper="separate", model_wrapper_cfg="separate")

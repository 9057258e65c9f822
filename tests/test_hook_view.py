"""What hooks see: runner.iter/epoch at every event equal MMEngine's, and its helpers."""

import pytest
import torch
from torch.utils.data import DataLoader

from engine import BaseMetric, Hook, Runner
from engine.hooks import RuntimeInfoHook
from engine.logging import MessageHub
from models import ParamModel

EVENTS = ("before_run", "before_train", "before_train_epoch", "after_train_epoch",
          "before_val_epoch", "after_train", "after_run")  # fmt: skip


class Seen(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        return {"acc": 1.0}


class Record(Hook):
    """Records (event, runner.iter, runner.epoch); the EVENTS methods are added below."""

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append(("before_train_iter", runner.iter, runner.epoch))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.seen.append(("after_train_iter", runner.iter, runner.epoch))


for _event in EVENTS:
    setattr(Record, _event, lambda self, runner, _e=_event, **kw: self.seen.append(
        (_e, runner.iter, runner.epoch)))  # fmt: skip


def loader(n):
    return DataLoader([{"x": torch.tensor([1.0])}] * n, batch_size=None)


def build(train_cfg, hook, n=2):
    return Runner(
        model=ParamModel(),
        work_dir=None,
        train_dataloader=loader(n),
        val_dataloader=loader(1),
        val_evaluator=Seen(),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        custom_hooks=[hook],
        default_hooks=dict(logger=None),
    )


def test_epoch_based_counts_match_mmengine():
    hook = Record()
    build(dict(by_epoch=True, max_epochs=2), hook).train()
    # MMEngine's values: iter advances after after_train_iter, epoch after after_train_epoch.
    assert hook.seen == [
        ("before_run", 0, 0),
        ("before_train", 0, 0),
        ("before_train_epoch", 0, 0),
        ("before_train_iter", 0, 0),
        ("after_train_iter", 0, 0),
        ("before_train_iter", 1, 0),
        ("after_train_iter", 1, 0),
        ("after_train_epoch", 2, 0),
        ("before_val_epoch", 2, 1),
        ("before_train_epoch", 2, 1),
        ("before_train_iter", 2, 1),
        ("after_train_iter", 2, 1),
        ("before_train_iter", 3, 1),
        ("after_train_iter", 3, 1),
        ("after_train_epoch", 4, 1),
        ("before_val_epoch", 4, 2),
        ("after_train", 4, 2),
        ("after_run", 4, 2),
    ]


def test_iter_based_counts_and_helpers_match_mmengine():
    fired = []

    class Helpers(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            fired.append(
                (
                    runner.iter,
                    self.every_n_train_iters(runner, 2),
                    self.every_n_inner_iters(batch_idx, 3),
                    self.end_of_epoch(runner.train_dataloader, batch_idx),
                    self.is_last_train_iter(runner),
                )
            )

    hook = Record()
    runner = build(dict(by_epoch=False, max_iters=4, val_interval=2), hook, n=3)
    runner.register_hook(Helpers())
    runner.train()
    assert [s for s in hook.seen if s[0] in ("after_train_iter", "before_val_epoch")] == [
        ("after_train_iter", 0, 0),
        ("after_train_iter", 1, 0),
        ("before_val_epoch", 2, 0),
        ("after_train_iter", 2, 0),
        ("after_train_iter", 3, 1),
        ("before_val_epoch", 4, 1),
    ]
    # (iter, every 2 iters, every 3rd batch of a pass, end of pass, last iter); the 4th
    # iteration is batch 0 of the second pass over 3 batches.
    assert fired == [
        (0, False, False, False, False),
        (1, True, False, False, False),
        (2, False, True, True, False),
        (3, True, False, False, True),
    ]
    assert runner.train_loop.max_iters == 4 and runner.max_iters == 4


def test_epoch_helpers_and_loop_objects():
    fired = []

    class Epochs(Hook):
        def after_train_epoch(self, runner):
            fired.append(
                (runner.epoch, self.every_n_epochs(runner, 2), self.is_last_train_epoch(runner))
            )

    runner = build(dict(by_epoch=True, max_epochs=3), Epochs(), n=2)
    assert runner.max_iters == 6 and runner.train_loop.max_epochs == 3  # 3 epochs of 2
    runner.train()
    assert fired == [(0, False, False), (1, True, False), (2, False, True)]
    assert runner.val_loop.run() == {"acc": 1.0}
    assert runner.train_loop.stop_training is False
    runner.train_loop.stop_training = True
    assert runner.state.should_stop is True


def test_generic_epoch_and_iter_methods_reach_every_mode():
    calls = []

    class Generic(Hook):
        def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None, mode="train"):
            calls.append(mode)

    runner = build(dict(by_epoch=True, max_epochs=1), Generic(), n=2)
    runner.train()
    assert calls == ["train", "train", "val"]


def test_runtime_info_fills_the_message_hub():
    runner = build(dict(by_epoch=True, max_epochs=2), Hook(), n=3)
    assert any(isinstance(h, RuntimeInfoHook) for h in runner.hooks)  # a default hook
    runner.train()
    hub = runner.message_hub
    assert hub is MessageHub.get_instance(runner.experiment_name)
    assert hub.get_scalar("train/lr").current() == 0.1
    # ParamModel's loss is p * x with x = 1 and lr 0.1: p = 0, -0.1, ..., -0.5 at iter 0..5
    losses = hub.get_scalar("train/loss").data[0].tolist()
    assert losses == pytest.approx([0.0, -0.1, -0.2, -0.3, -0.4, -0.5], abs=1e-6)
    assert hub.get_scalar("val/acc").current() == 1.0
    assert (hub.get_info("epoch"), hub.get_info("max_epochs")) == (1, 2)
    assert hub.get_info("iter") == 5  # set before the last iteration, as MMEngine


def test_log_processor_reads_the_hub():
    lines = []

    class Log(Hook):
        priority = "LOWEST"  # after RuntimeInfoHook and IterTimerHook filled the hub

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            lines.append(runner.log_processor.get_log_after_iter(runner, batch_idx, "train"))

    runner = build(dict(by_epoch=True, max_epochs=1), Log(), n=4)
    runner.train()
    tag, line = lines[-1]
    # losses 0, -0.1, -0.2, -0.3 (window 10 covers all four); lr the latest value
    assert tag["loss"] == pytest.approx(-0.15) and tag["lr"] == 0.1
    assert line.startswith("Epoch(train) [1][4/4]") and "loss: -0.1500" in line
    metrics, line = runner.log_processor.get_log_after_epoch(runner, 0, "val")
    # MMEngine's line: the epoch that trained, the metric, then the epoch's mean timings
    assert metrics["acc"] == 1.0 and set(metrics) == {"acc", "time", "data_time"}
    assert line.startswith("Epoch(val) [1][1/1]    acc: 1.0000  data_time: ") and " time: " in line

"""What MMEngine's hooks do that ported code relies on: LoggerHook asks a configured
``runner.log_processor`` for its lines (the default keeps engine's line), CheckpointHook
publishes its checkpoints in the message hub, argument errors are MMEngine's exceptions,
SyncBuffersHook averages buffers across processes."""

from __future__ import annotations

import json
import logging
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from engine import BaseMetric, BaseModel, Runner
from engine.hooks import CheckpointHook, EarlyStoppingHook, LoggerHook, SyncBuffersHook
from engine.runner import LogProcessor
from engine.runner.log_processor import DefaultLogProcessor
from engine.testing._internal import MultiProcessTestCase
from models import ParamModel
from run_files import run_file


@pytest.fixture
def lines():
    """Messages that reached logger 'engine' (runner.logger propagates there)."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    engine_logger = logging.getLogger("engine")
    old_level = engine_logger.level
    engine_logger.addHandler(handler)
    engine_logger.setLevel(logging.INFO)
    yield lambda: [r.getMessage() for r in records]
    engine_logger.removeHandler(handler)
    engine_logger.setLevel(old_level)


class Scripted(BaseModel):
    """``train_step`` returns ``{'loss': 0.5 * i}`` on its i-th call (0-based)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.calls = 0

    def forward(self, x, mode="tensor"):
        return [self.w.detach().clone() for _ in range(len(x))]

    def train_step(self, data, optim_wrapper):
        optim_wrapper.update_params(self.w * 0.0)
        self.calls += 1
        return {"loss": torch.tensor(0.5 * (self.calls - 1))}


class Scores(BaseMetric):
    def __init__(self, values):
        super().__init__()
        self.values = iter(values)

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        return next(self.values)


def batches(n):
    return DataLoader([{"x": torch.tensor([float(i)])} for i in range(n)], batch_size=None)


def scripted_runner(work_dir, interval, n=10, **kwargs):
    return Runner(
        model=Scripted(),
        work_dir=work_dir,
        train_dataloader=batches(n),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        default_hooks=dict(
            logger=LoggerHook(interval=interval, progress_bar=False), checkpoint=None
        ),
        **kwargs,
    )


# -- LoggerHook and runner.log_processor ------------------------------------------------------


def test_a_configured_log_processor_writes_the_lines(tmp_path, lines):
    runner = scripted_runner(tmp_path, 5, log_processor=dict(window_size=2))
    runner.train()
    train = [m for m in lines() if m.startswith("Epoch(train)")]
    # The processor's window of 2 (losses 1.5, 2.0 then 4.0, 4.5), not the hook's window
    # of 5 that engine's own line would average (1.0 and 3.5).
    assert [m[:23] for m in train] == ["Epoch(train) [1][ 5/10]", "Epoch(train) [1][10/10]"]
    assert "loss: 1.7500" in train[0] and "loss: 4.2500" in train[1]
    records = [json.loads(x) for x in run_file(tmp_path, "scalars.jsonl").read_text().splitlines()]
    assert [(r["mode"], r["loss"], r["iter"]) for r in records] == [
        ("train", 1.75, 5),
        ("train", 4.25, 10),
    ]


def test_the_default_processor_keeps_engines_line(tmp_path, lines):
    runner = scripted_runner(tmp_path, 5)
    assert type(runner.log_processor) is DefaultLogProcessor
    runner.train()
    train = [m for m in lines() if m.startswith("Epoch(train)")]
    assert train[0].startswith("Epoch(train) [1][ 5/10]") and train[0].endswith("loss: 1.0000")
    assert train[1].endswith("loss: 3.5000")  # means of 0..2 and 2.5..4.5 over the interval


class Recording(LogProcessor):
    """A user's processor: records every call, returns its own tag and line."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def get_log_after_iter(self, runner, batch_idx, mode):
        self.calls.append((mode, batch_idx, runner.iter))
        return {"custom": float(batch_idx)}, f"custom {mode} {batch_idx}"

    def get_log_after_epoch(self, runner, batch_idx, mode, with_non_scalar=False):
        self.calls.append((f"{mode} epoch", batch_idx, runner.iter))
        return {"acc": 0.5}, f"custom {mode} epoch"


def test_a_users_processor_class_is_asked_at_mmengines_points(tmp_path, lines):
    runner = scripted_runner(
        tmp_path,
        3,
        n=7,
        val_dataloader=batches(4),
        val_evaluator=Scores([{"acc": 0.5}]),
        log_processor=dict(type=Recording, window_size=3),
    )
    assert isinstance(runner.log_processor, Recording) and runner.log_processor.window_size == 3
    runner.train()
    # Train batches 3 and 6 of 7 (the shorter last window is ignored), validation batch 3 of
    # 4, then the validation epoch (its size, 4); runner.iter is the index of the iteration.
    assert runner.log_processor.calls == [
        ("train", 2, 2),
        ("train", 5, 5),
        ("val", 2, 7),
        ("val epoch", 4, 7),
    ]
    assert {"custom train 2", "custom train 5", "custom val 2", "custom val epoch"} <= set(lines())
    records = [json.loads(x) for x in run_file(tmp_path, "scalars.jsonl").read_text().splitlines()]
    assert records == [
        {"mode": "train", "custom": 2.0},
        {"mode": "train", "custom": 5.0},
        {"mode": "val", "acc": 0.5},
    ]
    assert runner.visualizer.scalars["acc"] == [(7, 0.5)]  # trackers through the visualizer


def test_the_processor_path_reads_no_tensor_between_intervals(tmp_path, monkeypatch):
    runner = Runner(
        model=Scripted(),
        work_dir=tmp_path,
        train_dataloader=batches(100),
        train_cfg=dict(by_epoch=False, max_iters=100),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        default_hooks=dict(logger=LoggerHook(interval=50, progress_bar=False), checkpoint=None),
        log_processor=dict(window_size=50, by_epoch=False),
    )
    seen = {"iter": 0, "reads": []}

    def read(name, original):
        def counted(self, *args, **kwargs):
            if "torch/utils/data/" not in sys._getframe(1).f_code.co_filename:
                seen["reads"].append(runner.state.iter)
            return original(self, *args, **kwargs)

        return counted

    for name in ("item", "tolist", "__float__", "__format__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, read(name, getattr(torch.Tensor, name)))
    runner.train()
    monkeypatch.undo()
    assert sorted(set(seen["reads"])) == [50, 100]


# -- CheckpointHook in the message hub ----------------------------------------------------------


def param_runner(work_dir, hook, metrics, epochs=3):
    one = DataLoader([{"x": torch.tensor([1.0])}], batch_size=None)
    return Runner(
        model=ParamModel(),
        work_dir=work_dir,
        train_dataloader=one,
        val_dataloader=one,
        val_evaluator=Scores(metrics),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=1.0)),
        default_hooks=dict(logger=None, checkpoint=hook),
    )


def test_checkpoints_and_best_scores_are_in_the_message_hub(tmp_path):
    hook = CheckpointHook(interval=1, save_best="acc")
    runner = param_runner(tmp_path, hook, [{"acc": 0.5}, {"acc": 0.9}, {"acc": 0.7}])
    runner.train()
    hub = runner.message_hub
    assert hub.get_info("last_ckpt") == str(tmp_path / "epoch_3")
    assert (tmp_path / "epoch_3").is_dir()
    assert hub.get_info("best_score") == 0.9
    assert hub.get_info("best_ckpt") == str(tmp_path / "best_acc") == hook.best_ckpt_path
    assert hook.key_indicators == ["acc"] and hook.out_dir == runner.work_dir


def test_several_best_metrics_get_their_own_keys(tmp_path):
    hook = CheckpointHook(interval=1, save_best=["acc", "loss"])
    metrics = [{"acc": 0.5, "loss": 0.4}, {"acc": 0.4, "loss": 0.2}]
    runner = param_runner(tmp_path, hook, metrics, epochs=2)
    runner.train()
    hub = runner.message_hub
    assert (hub.get_info("best_score_acc"), hub.get_info("best_score_loss")) == (0.5, 0.2)
    assert hub.get_info("best_ckpt_loss") == str(tmp_path / "best_loss")
    assert hook.best_ckpt_path_dict == {
        "acc": str(tmp_path / "best_acc"),
        "loss": str(tmp_path / "best_loss"),
    }
    assert not hasattr(hook, "best_ckpt_path")


def test_best_paths_come_back_from_the_hub_before_training(tmp_path):
    runner = param_runner(tmp_path, None, [])
    runner.message_hub.update_info("best_ckpt", "earlier/best_acc")
    runner.message_hub.update_info("best_ckpt_loss", "earlier/best_loss")
    single, several = CheckpointHook(save_best="acc"), CheckpointHook(save_best=["acc", "loss"])
    single.before_train(runner)
    several.before_train(runner)
    assert single.best_ckpt_path == "earlier/best_acc"
    assert several.best_ckpt_path_dict == {"acc": None, "loss": "earlier/best_loss"}


def test_no_metrics_warns_on_the_runners_logger(caplog):
    runner = SimpleNamespace(logger=logging.getLogger("engine.test_runner_logger"))
    with caplog.at_level(logging.WARNING, logger="engine.test_runner_logger"):
        CheckpointHook(save_best="auto").after_val_epoch(runner, {})
    assert [r.name for r in caplog.records] == ["engine.test_runner_logger"]
    assert "no metrics" in caplog.records[0].getMessage()


# -- argument errors: MMEngine's exception types, engine's messages ---------------------------


@pytest.mark.parametrize(
    ("kwargs", "kinds", "words"),
    [
        (dict(save_best=dict(acc="acc")), (TypeError, AssertionError), '"save_best" should be'),
        (dict(save_best=["auto", "acc"]), (ValueError, AssertionError), "Only support one"),
        (dict(save_best=["acc"], rule=1), (ValueError, AssertionError), '"rule" should be a str'),
        (
            dict(save_best=["acc"], rule=["greater", "less"]),
            (ValueError, AssertionError),
            'Number of "rule" must be',
        ),
        (
            dict(file_client_args={"backend": "disk"}, backend_args={"backend": "local"}),
            (ValueError,),
            "cannot be set at the same time",
        ),
        (dict(backend_args={"backend": "petrel"}), (ValueError,), "local disk only"),
    ],
)
def test_checkpoint_hook_rejects_what_mmengine_rejects(kwargs, kinds, words):
    for kind in kinds:
        with pytest.raises(kind, match=words):
            CheckpointHook(**kwargs)


def test_checkpoint_hook_file_access_is_local():
    hook = CheckpointHook(file_client_args={"backend": "disk"})
    assert hook.file_backend is hook.file_client
    assert type(CheckpointHook().file_backend).__name__ == "LocalBackend"
    assert CheckpointHook(greater_keys="acc").greater_keys == ("acc",)


@pytest.mark.parametrize(
    ("kwargs", "kinds", "words"),
    [
        (dict(interval="100"), (TypeError, ValueError), "interval must be an int >= 1"),
        (dict(interval=-1), (ValueError,), "interval must be an int >= 1"),
        (dict(ignore_last="False"), (TypeError,), "ignore_last must be a bool"),
        (dict(out_suffix=[100]), (TypeError,), "out_suffix must be a str or a sequence"),
        (dict(file_client_args={"backend": "disk"}), (ValueError,), "pass out_dir too"),
        (
            dict(out_dir="o", file_client_args={}, backend_args={}),
            (ValueError,),
            "cannot be set at the same time",
        ),
    ],
)
def test_logger_hook_rejects_what_mmengine_rejects(kwargs, kinds, words):
    for kind in kinds:
        with pytest.raises(kind, match=words):
            LoggerHook(**kwargs)


def test_early_stopping_needs_a_rule_where_mmengine_does():
    with pytest.raises(ValueError, match="pass rule='greater' or rule='less'"):
        EarlyStoppingHook(monitor="recall")
    assert EarlyStoppingHook(monitor="recall", rule="greater").rule == "greater"
    assert EarlyStoppingHook(monitor="coco/bbox_mAP").rule == "greater"


# -- SyncBuffersHook across two processes (gloo) ----------------------------------------------


class TestSyncBuffersAcrossProcesses(MultiProcessTestCase):
    def setUp(self):
        super().setUp()
        self._spawn_processes()

    def test_buffers_become_the_mean_over_processes(self):
        dist.init_process_group(
            "gloo", init_method=f"file://{self.file_name}", rank=self.rank, world_size=2
        )
        model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        model[1].running_mean.fill_(float(self.rank))  # 0 and 1
        model[1].running_var.fill_(float(2 + 2 * self.rank))  # 2 and 4
        SyncBuffersHook().after_train_epoch(SimpleNamespace(model=model))
        assert model[1].running_mean.tolist() == [0.5, 0.5]
        assert model[1].running_var.tolist() == [3.0, 3.0]
        assert model[1].num_batches_tracked.item() == 0  # an integer count is left alone
        dist.destroy_process_group()

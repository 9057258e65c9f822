"""LoggerHook, driven by the real Runner and loops: window means, no host sync between
intervals, non-finite flags, validation/test metrics, other processes."""

import json
import logging
import math

import pytest
import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker
from torch import nn
from torch.utils.data import DataLoader

from engine import BaseMetric, BaseModel, Hook, Runner
from engine.hooks.logger_hook import LoggerHook
from run_files import run_file


@pytest.fixture
def lines():
    """Messages of logger 'engine', read from its own handler (a Runner may stop propagation)."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    engine_logger = logging.getLogger("engine")
    old_level = engine_logger.level
    engine_logger.addHandler(handler)
    engine_logger.setLevel(logging.INFO)
    yield lambda: [r.getMessage() for r in records if r.getMessage()[:6] in ("Epoch(", "Iter(t")]
    engine_logger.removeHandler(handler)
    engine_logger.setLevel(old_level)


class Scripted(BaseModel):
    """``train_step`` returns ``outputs_at(i)`` on its i-th call (0-based) after a real SGD
    update of a weight that nothing else reads."""

    def __init__(self, outputs_at):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.outputs_at, self.calls = outputs_at, 0

    def forward(self, x, mode="tensor"):
        return [self.w.detach().clone() for _ in range(len(x))]

    def train_step(self, data, optim_wrapper):
        optim_wrapper.update_params(self.w * 0.0)
        outputs, self.calls = self.outputs_at(self.calls), self.calls + 1
        return outputs


class Fixed(BaseMetric):
    def __init__(self, metrics):
        super().__init__()
        self.metrics = metrics

    def process(self, data_batch, data_samples):
        self.results.extend(range(len(data_samples)))

    def compute_metrics(self, results):
        return dict(self.metrics)


def batches(n):
    return DataLoader([{"x": torch.tensor([float(i)])} for i in range(n)], batch_size=None)


def run(outputs_at, hook, work_dir, batches_per_epoch=10, train_cfg=None, **kwargs):
    runner = Runner(
        model=Scripted(outputs_at),
        work_dir=work_dir,
        train_dataloader=batches(batches_per_epoch),
        train_cfg=train_cfg or dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        default_hooks=dict(logger=hook, checkpoint=None),
        **kwargs,
    )
    runner.train()
    return runner


def losses(i):
    out = {"loss": torch.tensor(0.5 * i), "loss_cls": torch.tensor(0.25 * i)}
    if i % 2 == 0:  # an update every other iteration
        out["grad_norm"] = torch.tensor(2.0 * i)
    return out


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_window_means_in_line_and_jsonl(tmp_path, lines):
    run(losses, LoggerHook(interval=5), tmp_path)
    first, second = lines()
    assert first.startswith("Epoch(train) [1][ 5/10]  lr: 1.0000e-02  eta: ")
    assert first.endswith("loss: 1.0000  loss_cls: 0.5000  grad_norm: 4.0000")  # of 0, 2, 4
    assert second.startswith("Epoch(train) [1][10/10]")
    assert second.endswith("loss: 3.5000  loss_cls: 1.7500  grad_norm: 14.0000")  # of 6, 8
    assert "memory" not in first  # CPU
    records = read_jsonl(run_file(tmp_path, "scalars.jsonl"))
    assert [(r["mode"], r["epoch"], r["iter"], r["step"]) for r in records] == [
        ("train", 1, 5, 5),
        ("train", 1, 10, 10),
    ]
    assert [(r["loss"], r["loss_cls"], r["grad_norm"], r["lr"]) for r in records] == [
        (1.0, 0.5, 4.0, 0.01),
        (3.5, 1.75, 14.0, 0.01),
    ]
    assert all(r["time"] >= 0 and r["data_time"] >= 0 for r in records)


def test_tail_of_epoch_and_iteration_based_line(tmp_path, lines):
    run(losses, LoggerHook(interval=5), tmp_path, 7, dict(by_epoch=True, max_epochs=2))
    assert [line[:24] for line in lines()] == [
        "Epoch(train) [1][5/7]  l",
        "Epoch(train) [2][5/7]  l",  # the 2-iteration tails are dropped (ignore_last)
    ]
    before = len(lines())
    run(losses, LoggerHook(interval=5, ignore_last=False), None, 7)
    assert lines()[-1].startswith("Epoch(train) [1][7/7]")
    assert lines()[-1].endswith("loss: 2.7500  loss_cls: 1.3750  grad_norm: 12.0000")  # 5, 6
    assert len(lines()) == before + 2
    run(
        losses,
        LoggerHook(interval=4, ignore_last=False),
        None,
        7,
        dict(by_epoch=False, max_iters=10),
    )
    assert [line[:20] for line in lines()[-3:]] == [
        "Iter(train) [ 4/10] ",
        "Iter(train) [ 8/10] ",
        "Iter(train) [10/10] ",
    ]


def test_no_host_reads_between_intervals(tmp_path, monkeypatch, lines):
    done = ["setup"]  # the iteration running (1-based) or done, as the counting wrappers see it

    class Count(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            done[0] = runner.state.iter + 1

    calls = []
    names = ("item", "__float__", "__bool__", "tolist", "__int__", "__index__", "__format__",
             "__repr__", "numpy")  # fmt: skip
    for name in names:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls.append((done[0], _name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def outputs_at(i):
        out = {"loss": torch.tensor(float(i)), "acc": torch.full((4,), 0.5)}
        if i % 3 == 0:
            out["grad_norm"] = torch.tensor(1.0)
        return out

    hook = LoggerHook(interval=50, progress_bar=True)
    # Count runs first (HIGHEST): a read during iteration k's events is counted at k.
    run(outputs_at, hook, tmp_path, 100, custom_hooks=[dict(type=Count, priority="HIGHEST")])
    monkeypatch.undo()
    assert {it for it, _ in calls if it != "setup"} == {50, 100}
    assert all(sum(1 for it, _ in calls if it == at) <= 3 for at in (50, 100))
    assert (50, "tolist") in calls
    assert hook._bar is None  # closed at the end of the epoch
    assert len(lines()) == 2 and lines()[0].endswith(
        "loss: 24.5000  acc: 0.5000  grad_norm: 1.0000"
    )


def test_nonfinite_keys_flag_only_their_window(tmp_path):
    seen = {}
    hook = LoggerHook(interval=5)

    class Record(Hook):
        priority = "LOW"  # after LoggerHook (BELOW_NORMAL) has flushed its window

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            seen[runner.state.iter] = list(hook.nonfinite_keys)

    def outputs_at(i):
        out = losses(i)
        if i == 6:
            out["loss"] = torch.tensor(float("nan"))
        if i == 8:
            out["grad_norm"] = torch.tensor(float("inf"))
        return out

    run(outputs_at, hook, tmp_path, 15, custom_hooks=[Record()], nan_policy="ignore")
    assert (seen[5], seen[10], seen[15]) == ([], ["loss", "grad_norm"], [])
    assert math.isnan(read_jsonl(run_file(tmp_path, "scalars.jsonl"))[1]["loss"])


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
        pass

    def log(self, values, step=None, **kwargs):
        self.records.append((values, step))


def test_val_and_test_metrics(tmp_path, lines):
    tracker = ListTracker()
    runner = run(
        losses,
        LoggerHook(interval=5),
        tmp_path,
        val_dataloader=batches(3),
        val_evaluator=Fixed({"accuracy/top1": 97.5, "n": torch.tensor(3)}),
        test_dataloader=batches(3),
        test_evaluator=Fixed({"accuracy/top1": 90.0}),
        log_with=[tracker],
    )
    runner.test()
    assert lines()[-2:] == [
        "Epoch(val) [1][3/3]  accuracy/top1: 97.5000  n: 3",
        "Epoch(test) [3/3]  accuracy/top1: 90.0000",
    ]
    val, test = read_jsonl(run_file(tmp_path, "scalars.jsonl"))[-2:]
    assert val == {"mode": "val", "epoch": 1, "iter": 10, "step": 10, "accuracy/top1": 97.5, "n": 3}
    assert test["mode"] == "test" and test["accuracy/top1"] == 90.0
    logged = tracker.records
    assert logged[0][1] == 5 and logged[0][0]["train/loss"] == 1.0
    assert "train/iter" not in logged[0][0]
    assert logged[2] == (
        {"val/epoch": 1, "val/accuracy/top1": 97.5, "val/n": 3},
        10,
    )  # one step axis: the iteration


def test_other_processes_write_nothing_but_still_check(tmp_path, monkeypatch):
    monkeypatch.setattr(Accelerator, "is_main_process", property(lambda self: False))
    hook = LoggerHook(interval=5)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("engine").addHandler(handler)
    try:
        run(lambda i: {"loss": torch.tensor(float("nan"))}, hook, tmp_path / "run", 5,
            nan_policy="ignore")  # fmt: skip
    finally:
        logging.getLogger("engine").removeHandler(handler)
    assert not any(r.getMessage().startswith("Epoch(") for r in records)
    assert not list((tmp_path / "run").rglob("scalars.jsonl"))
    assert hook.nonfinite_keys == ["loss"]  # every process checks its window


def test_no_files_without_work_dir(tmp_path, monkeypatch, lines):
    monkeypatch.chdir(tmp_path)
    run(losses, LoggerHook(interval=2), None, val_dataloader=batches(3),
        val_evaluator=Fixed({"acc": 1.0}))  # fmt: skip
    assert len(lines()) == 6 and lines()[-1] == "Epoch(val) [1][3/3]  acc: 1.0000"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("interval", [0, -1, 2.5, True, "10", None])
def test_bad_interval(interval):
    with pytest.raises(ValueError, match="interval must be an int >= 1"):
        LoggerHook(interval=interval)


def test_out_dir_copies_the_logs_and_exp_name_interval(tmp_path, caplog):
    work_dir, out_dir = tmp_path / "exp", tmp_path / "shared"
    hook = LoggerHook(interval=5, out_dir=str(out_dir), keep_local=False, interval_exp_name=4)
    with caplog.at_level(logging.INFO, logger="engine"):
        run(losses, hook, work_dir, experiment_name="exp-a")
    (copy,) = (out_dir / "exp").glob("*/scalars.jsonl")  # the run folder's, under its name
    copied = json.loads(copy.read_text().splitlines()[-1])
    assert copied["iter"] == 10 and copied["loss"] == 3.5
    assert not list(work_dir.rglob("scalars.jsonl"))  # keep_local=False
    assert sum("Exp name: exp-a" in r.getMessage() for r in caplog.records) == 2  # iters 4, 8

"""LoggerHook: window means, no host sync between intervals, non-finite flags, outputs."""

import json
import logging
import math
from types import SimpleNamespace

import pytest
import torch

from engine.hooks.hook import HookList
from engine.hooks.iter_timer_hook import IterTimerHook
from engine.hooks.logger_hook import LoggerHook
from engine.runner.train_state import TrainState


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
    yield lambda: [r.getMessage() for r in records]
    engine_logger.removeHandler(handler)
    engine_logger.setLevel(old_level)


def make_runner(hook, work_dir, batches=10, max_epochs=1, max_iters=None, accelerator=None):
    state = TrainState(max_epochs=None if max_iters else max_epochs, max_iters=max_iters)
    return SimpleNamespace(
        state=state,
        hooks=HookList([IterTimerHook(), hook]),
        optim_wrapper=SimpleNamespace(get_lr=lambda: {"lr": [0.01, 0.1]}),
        accelerator=accelerator,
        work_dir=work_dir,
        train_dataloader=list(range(batches)),
        val_dataloader=list(range(3)),
        test_dataloader=list(range(3)),
    )


def train(runner, outputs_at, iters, on_iter=lambda it: None):
    """Drive the hooks the way engine.runner.loops does: state.iter counts completed iterations."""
    state, hooks = runner.state, runner.hooks
    hooks.call("before_train", runner)
    hooks.call("before_train_epoch", runner)
    for _ in range(iters):
        batch_idx = state.inner_iter
        hooks.call("before_train_iter", runner, batch_idx=batch_idx, data_batch=None)
        outputs = outputs_at(state.iter)
        state.iter += 1
        state.inner_iter += 1
        state.step = state.iter
        hooks.call(
            "after_train_iter", runner, batch_idx=batch_idx, data_batch=None, outputs=outputs
        )
        on_iter(state.iter)
        if state.max_epochs is not None and state.inner_iter == len(runner.train_dataloader):
            hooks.call("after_train_epoch", runner)
            state.epoch += 1
            state.inner_iter = 0
            if state.epoch < state.max_epochs:
                hooks.call("before_train_epoch", runner)
    if state.max_epochs is None:
        hooks.call("after_train_epoch", runner)
    hooks.call("after_train", runner)


def losses(i):
    out = {"loss": torch.tensor(0.5 * i), "loss_cls": torch.tensor(0.25 * i)}
    if i % 2 == 0:  # an update every other iteration
        out["grad_norm"] = torch.tensor(2.0 * i)
    return out


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_window_means_in_line_and_jsonl(tmp_path, lines):
    hook = LoggerHook(interval=5)
    train(make_runner(hook, tmp_path), losses, 10)
    first, second = lines()
    assert first.startswith("Epoch(train) [1][ 5/10]  lr: 1.0000e-02  eta: 0:00:00  time: ")
    assert first.endswith(
        "loss: 1.0000  loss_cls: 0.5000  grad_norm: 4.0000"
    )  # grad_norm of 0, 2, 4
    assert second.startswith("Epoch(train) [1][10/10]")
    assert second.endswith("loss: 3.5000  loss_cls: 1.7500  grad_norm: 14.0000")  # of 6, 8
    assert "memory" not in first  # CPU
    records = read_jsonl(tmp_path / "scalars.jsonl")
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
    train(make_runner(LoggerHook(interval=5), tmp_path, batches=7, max_epochs=2), losses, 14)
    assert [line[:24] for line in lines()] == [
        "Epoch(train) [1][5/7]  l",
        "Epoch(train) [2][5/7]  l",
    ]
    lines_before = len(lines())
    train(make_runner(LoggerHook(interval=5, ignore_last=False), None, batches=7), losses, 7)
    assert lines()[-1].startswith("Epoch(train) [1][7/7]")
    assert lines()[-1].endswith("loss: 2.7500  loss_cls: 1.3750  grad_norm: 12.0000")  # iters 5, 6
    assert len(lines()) == lines_before + 2
    train(make_runner(LoggerHook(interval=4, ignore_last=False), None, max_iters=10), losses, 10)
    assert [line[:20] for line in lines()[-3:]] == [
        "Iter(train) [ 4/10] ",
        "Iter(train) [ 8/10] ",
        "Iter(train) [10/10] ",
    ]


def test_no_host_reads_between_intervals(tmp_path, monkeypatch, lines):
    hook = LoggerHook(interval=50, progress_bar=True)
    runner = make_runner(hook, tmp_path, batches=100)
    calls = []
    names = (
        "item",
        "__float__",
        "__bool__",
        "tolist",
        "__int__",
        "__index__",
        "__format__",
        "__repr__",
        "numpy",
    )
    for name in names:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls.append((runner.state.iter, _name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def outputs_at(i):
        out = {"loss": torch.tensor(float(i)), "acc": torch.full((4,), 0.5)}
        if i % 3 == 0:
            out["grad_norm"] = torch.tensor(1.0)
        return out

    train(runner, outputs_at, 100)
    monkeypatch.undo()
    assert {it for it, _ in calls} == {50, 100}
    assert all(sum(1 for it, _ in calls if it == at) <= 3 for at in (50, 100))
    assert (50, "tolist") in calls
    assert hook._bar is None  # closed at the end of the epoch
    assert len(lines()) == 2 and lines()[0].endswith(
        "loss: 24.5000  acc: 0.5000  grad_norm: 1.0000"
    )


def test_nonfinite_keys_flag_only_their_window(tmp_path):
    hook = LoggerHook(interval=5)
    seen = {}

    def outputs_at(i):
        out = losses(i)
        if i == 6:
            out["loss"] = torch.tensor(float("nan"))
        if i == 8:
            out["grad_norm"] = torch.tensor(float("inf"))
        return out

    train(
        make_runner(hook, tmp_path, batches=15),
        outputs_at,
        15,
        lambda it: seen.update({it: list(hook.nonfinite_keys)}),
    )
    assert (seen[5], seen[10], seen[15]) == ([], ["loss", "grad_norm"], [])
    assert math.isnan(read_jsonl(tmp_path / "scalars.jsonl")[1]["loss"])


def test_val_and_test_metrics(tmp_path, lines):
    logged = []
    tracker = SimpleNamespace(is_main_process=True, trackers=[object()], device=torch.device("cpu"))
    tracker.log = lambda values, step: logged.append((values, step))
    runner = make_runner(LoggerHook(interval=5), tmp_path, accelerator=tracker)
    train(runner, losses, 10)
    runner.state.epoch = 1
    runner.hooks.call(
        "after_val_epoch", runner, metrics={"accuracy/top1": 97.5, "n": torch.tensor(3)}
    )
    runner.hooks.call("after_test_epoch", runner, metrics={"accuracy/top1": 90.0})
    assert lines()[-2:] == [
        "Epoch(val) [1][3/3]  accuracy/top1: 97.5000  n: 3",
        "Epoch(test) [3/3]  accuracy/top1: 90.0000",
    ]
    val, test = read_jsonl(tmp_path / "scalars.jsonl")[-2:]
    assert val == {"mode": "val", "epoch": 1, "iter": 10, "step": 10, "accuracy/top1": 97.5, "n": 3}
    assert test["mode"] == "test"
    assert (
        logged[0][1] == 5 and logged[0][0]["train/loss"] == 1.0 and "train/iter" not in logged[0][0]
    )
    assert logged[2] == ({"val/epoch": 1, "val/accuracy/top1": 97.5, "val/n": 3}, 1)


def test_other_processes_write_nothing_but_still_check(tmp_path, lines):
    worker = SimpleNamespace(is_main_process=False, trackers=[], device=torch.device("cpu"))
    hook = LoggerHook(interval=5)
    train(
        make_runner(hook, tmp_path, accelerator=worker),
        lambda i: {"loss": torch.tensor(float("nan"))},
        5,
    )
    assert lines() == [] and list(tmp_path.iterdir()) == []
    assert hook.nonfinite_keys == ["loss"]


def test_no_files_without_work_dir(tmp_path, monkeypatch, lines):
    monkeypatch.chdir(tmp_path)
    runner = make_runner(LoggerHook(interval=2), None)
    train(runner, losses, 10)
    runner.hooks.call("after_val_epoch", runner, metrics={"acc": 1.0})
    assert len(lines()) == 6 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("interval", [0, -1, 2.5, True, "10", None])
def test_bad_interval(interval):
    with pytest.raises(ValueError, match="interval must be an int >= 1"):
        LoggerHook(interval=interval)

"""LogProcessor: MMEngine's tag dict and log line for a known message-hub history."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.logging import HistoryBuffer, MessageHub
from engine.runner import LogProcessor


def _runner(name: str, epoch: int = 1, iter_: int = 10) -> SimpleNamespace:
    hub = MessageHub.get_instance(name)
    for i in range(12):  # losses 12..1, times 0.5 each
        hub.update_scalar("train/loss", 12 - i)
        hub.update_scalar("train/time", 0.5)
        hub.update_scalar("train/data_time", 0.25)
    hub.update_scalar("train/lr", 0.02)
    hub.update_info("eta", 3725)
    loop = lambda n: SimpleNamespace(dataloader=[0] * n)  # noqa: E731
    return SimpleNamespace(
        message_hub=hub, epoch=epoch, iter=iter_, max_epochs=10, max_iters=120,
        train_loop=loop(20), val_loop=loop(10), test_loop=loop(5), model=torch.nn.Linear(1, 1),
    )  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CUDA line adds memory")
def test_train_line_and_tag_by_epoch():
    tag, line = LogProcessor(window_size=4).get_log_after_iter(_runner("lp_a"), 1, "train")
    # window 4 of losses 12..1 -> (4+3+2+1)/4 = 2.5; lr the latest value
    assert tag == {
        "loss": 2.5, "time": 0.5, "data_time": 0.25, "lr": 0.02, "epoch": 2, "iter": 11
    }  # fmt: skip
    assert line == (
        "Epoch(train)  [2][ 2/20]  lr: 2.0000e-02  eta: 1:02:05  "
        "time: 0.5000  data_time: 0.2500  loss: 2.5000"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CUDA line adds memory")
def test_train_line_by_iter_with_custom_max_and_hierarchy():
    custom = [dict(data_src="loss", method_name="max", window_size="global", log_name="loss_max")]
    lp = LogProcessor(by_epoch=False, custom_cfg=custom, log_with_hierarchy=True)
    tag, line = lp.get_log_after_iter(_runner("lp_b"), 3, "train")
    # global window = iter + 1 = 11 values: 11..1 -> max 11; default window 10 -> mean 5.5
    assert tag["train/loss_max"] == 11 and tag["train/loss"] == 5.5 and tag["iter"] == 11
    assert line.startswith("Iter(train) [ 11/120]  lr: 2.0000e-02  eta: 1:02:05")
    assert line.endswith("loss: 5.5000  loss_max: 11")


def test_val_epoch_line_orders_metrics_non_scalars_then_times():
    runner = _runner("lp_c")
    hub = runner.message_hub
    for t in (1.0, 2.0, 3.0):
        hub.update_scalar("val/time", t)
    hub.update_scalar("val/acc", 0.75)
    hub.update_info("val/per_class", {"cat": 1})
    tag, line = LogProcessor().get_log_after_epoch(runner, 2, "val", with_non_scalar=True)
    # the epoch window is batch_idx + 1 = 3 values -> mean time 2.0
    assert tag == {"acc": 0.75, "per_class": {"cat": 1}, "time": 2.0}
    assert line == "Epoch(val) [1][10/10]    acc: 0.7500  per_class: {'cat': 1}  time: 2.0000"


def test_bad_custom_cfg_fails_at_construction():
    with pytest.raises(AssertionError, match="twice"):
        LogProcessor(custom_cfg=[dict(data_src="loss"), dict(data_src="loss")])
    with pytest.raises(AssertionError, match="by_epoch"):
        LogProcessor(by_epoch=False, custom_cfg=[dict(data_src="loss", window_size="epoch")])
    with pytest.raises(TypeError, match="window_size"):
        LogProcessor()._parse_windows_size(_runner("lp_d"), 0, [dict(data_src="l", window_size=[])])


def test_history_mean_is_numpy_summation():
    values = np.random.default_rng(0).standard_normal(100)
    buffer = HistoryBuffer(values, np.ones(100))
    assert buffer.mean(10) == values[-10:].sum() / 10

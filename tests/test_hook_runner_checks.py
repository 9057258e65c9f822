"""Hooks reject a runner they cannot work with, at the start and with a clear message."""

from types import SimpleNamespace

import pytest

from engine.hooks import EarlyStoppingHook, RuntimeInfoHook
from engine.logging import MessageHub


def test_early_stopping_needs_a_stoppable_train_loop():
    hook = EarlyStoppingHook(monitor="acc", rule="greater")
    with pytest.raises(AssertionError, match="stop_training"):
        hook.before_run(SimpleNamespace(train_loop=object()))
    hook.before_run(SimpleNamespace(train_loop=SimpleNamespace(stop_training=False)))
    hook.before_run(SimpleNamespace(train_loop=None))  # val/test-only runs: nothing to stop


def test_runtime_info_records_lr_and_rejects_a_non_dict_get_lr():
    hub = MessageHub.get_instance("hook_runner_checks")
    good = SimpleNamespace(get_lr=lambda: {"lr": [0.25, 0.5]})
    runner = SimpleNamespace(message_hub=hub, iter=3, optim_wrapper=good)
    RuntimeInfoHook().before_train_iter(runner, batch_idx=0)
    assert hub.get_scalar("train/lr").current() == 0.25 and hub.get_info("iter") == 3
    runner.optim_wrapper = SimpleNamespace(get_lr=lambda: "0.1")
    with pytest.raises(AssertionError, match=r"get_lr\(\) should return a dict"):
        RuntimeInfoHook().before_train_iter(runner, batch_idx=0)

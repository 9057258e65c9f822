"""MMEngine's infrastructure names that ported hooks and tests import: registry, Config,
MessageHub/HistoryBuffer/MMLogger, dist, RunnerTestCase."""

import copy
import logging

import pytest
import torch

from engine import dist
from engine.config import Config, ConfigDict
from engine.logging import HistoryBuffer, MessageHub, MMLogger
from engine.registry import MODELS, DefaultScope, Registry, build_from_cfg
from engine.runner import Priority, get_priority
from engine.testing import RunnerTestCase


def test_registry_register_build_and_errors():
    reg = Registry("thing")

    @reg.register_module()
    class A:
        def __init__(self, x=1):
            self.x = x

    reg.register_module(name="B", module=A)
    assert reg.get("A") is A and reg.get("B") is A and "A" in reg and len(reg) == 2
    assert reg.build(dict(type="A", x=3)).x == 3
    assert build_from_cfg(dict(type="A"), reg, default_args=dict(x=5)).x == 5
    assert build_from_cfg(dict(type=A, x=7), reg).x == 7  # a class needs no registration
    with pytest.raises(KeyError, match="already registered"):
        reg.register_module(name="A", module=dict)
    reg.register_module(name="A", module=dict, force=True)
    assert reg.get("A") is dict
    with pytest.raises(KeyError, match="'C' is not in the thing registry"):
        reg.build(dict(type="C"))
    child = Registry("child", parent=reg)
    assert child.get("B") is A  # falls back to the parent


def test_config_is_a_dict_with_attribute_access():
    cfg = Config(dict(train_cfg=dict(max_epochs=2), hooks=[dict(type="X")]))
    assert cfg.train_cfg.max_epochs == 2 and isinstance(cfg.hooks[0], ConfigDict)
    copied = copy.deepcopy(cfg)
    copied.train_cfg.max_epochs = 5
    copied.new = dict(a=1)
    assert cfg.train_cfg.max_epochs == 2 and copied.new.a == 1 and type(copied) is Config
    with pytest.raises(AttributeError, match="no key 'missing'"):
        _ = cfg.missing


def test_message_hub_and_history_buffer():
    hub = MessageHub.get_instance("compat-test")
    assert MessageHub.get_current_instance() is hub
    for value in (1.0, 2.0, 6.0):
        hub.update_scalar("train/loss", torch.tensor(value))  # kept on the device
    hub.update_info("epoch", 3)
    buf = hub.get_scalar("train/loss")
    assert (buf.current(), buf.mean(), buf.mean(2), buf.max(), len(buf)) == (6.0, 3.0, 4.0, 6.0, 3)
    assert hub.get_info("epoch") == 3 and hub.runtime_info["epoch"] == 3
    other = MessageHub("copy")
    other.load_state_dict(hub.state_dict())
    assert other.get_scalar("train/loss").current() == 6.0
    with pytest.raises(KeyError, match="'nope' is not a scalar"):
        hub.get_scalar("nope")
    weighted = HistoryBuffer([2.0, 6.0], [1, 3])
    assert weighted.mean() == 2.0  # sum of values / sum of counts, as MMEngine


def test_mmlogger_reaches_engines_log(caplog):
    logger = MMLogger.get_instance("compat-logger")
    assert MMLogger.get_current_instance() is logger
    with caplog.at_level(logging.INFO, logger="engine"):
        logger.info("from a ported hook")
    assert "from a ported hook" in caplog.text


def test_dist_in_one_process():
    assert (dist.get_rank(), dist.get_world_size(), dist.is_main_process()) == (0, 1, True)
    assert not dist.is_distributed()
    t = torch.tensor([1.0, 2.0])
    assert dist.all_gather(t)[0] is t
    assert dist.collect_results([1, 2, 3], 2) == [1, 2]
    dist.all_reduce(t)
    dist.barrier()
    assert t.tolist() == [1.0, 2.0]


def test_priority_and_default_scope():
    assert get_priority(Priority.LOW) == 70 and get_priority("VERY_HIGH") == 10
    with pytest.raises(ValueError, match="between 0 and 100"):
        get_priority(101)
    DefaultScope.get_instance("compat-scope", scope_name="mmdet")
    assert DefaultScope.get_current_instance().scope_name == "mmdet"


class TestRunnerTestCase(RunnerTestCase):
    def test_epoch_and_iter_configs_train(self):
        assert MODELS.get("ToyModel") is not None
        runner = self.build_runner(copy.deepcopy(self.epoch_based_cfg))
        runner.train()
        assert (runner.epoch, runner.iter) == (2, 8)  # 12 samples in batches of 3, 2 epochs
        assert runner.message_hub.get_scalar("val/acc").current() == 1
        runner = self.build_runner(copy.deepcopy(self.iter_based_cfg))
        runner.train()
        assert runner.iter == 12

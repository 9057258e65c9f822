"""`FlexibleRunner`: MMEngine's strategies become the Runner's model_wrapper or accelerator."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from engine import BaseModel, Runner
from engine.model.fsdp2 import is_fsdp2
from engine.runner._flexible_runner import FlexibleRunner as FromMMEnginePath
from engine.runner.flexible_runner import FlexibleRunner, strategy_arguments


class Stack(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh())
        self.head = nn.Linear(4, 1)

    def forward(self, x, y, mode="tensor"):
        out = self.head(self.blocks(x))
        return {"loss": (out - y).pow(2).mean()} if mode == "loss" else out


def _train(
    runner_cls, tmp_path, name, optim_wrapper_type="OptimWrapper", **kwargs
) -> tuple[Runner, dict]:
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    runner = runner_cls(
        Stack(),
        work_dir=tmp_path / name,
        train_dataloader=dict(dataset=TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4),
        optim_wrapper=dict(type=optim_wrapper_type, optimizer=dict(type="SGD", lr=0.05)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        default_hooks=dict(checkpoint=None),
        randomness=dict(seed=0),
        **kwargs,
    )
    runner.train()
    return runner, {k: v.detach().clone() for k, v in runner._raw_model.state_dict().items()}


def test_fsdp_strategy_maps_to_fsdp2_and_trains_as_the_plain_runner(tmp_path, engine_log):
    _, plain = _train(Runner, tmp_path, "plain")
    runner, sharded = _train(
        FlexibleRunner,
        tmp_path,
        "fsdp",
        strategy=dict(type="FSDPStrategy", model_wrapper=dict(auto_wrap_policy=print)),
    )
    # One process: fsdp2 leaves the model whole (nothing to shard across); the mapping to
    # model_wrapper='fsdp2' is checked below, sharding itself by tests/test_fsdp2.py.
    assert not is_fsdp2(runner._raw_model)
    assert any("['auto_wrap_policy'] have no counterpart" in m for m in engine_log)
    for key, value in plain.items():
        torch.testing.assert_close(sharded[key], value, atol=1e-6, rtol=0)


def test_ddp_strategy_and_deepspeed_optim_wrapper_equal_the_runner(tmp_path):
    _, plain = _train(Runner, tmp_path, "plain")
    _, flexible = _train(
        FromMMEnginePath,
        tmp_path,
        "ddp",
        strategy=dict(type="DDPStrategy", model_wrapper=dict(find_unused_parameters=False)),
        optim_wrapper_type="DeepSpeedOptimWrapper",  # MMEngine's name: engine's OptimWrapper
    )
    for key, value in plain.items():
        assert torch.equal(flexible[key], value), key


def test_strategy_mapping_and_refusals():
    assert strategy_arguments(None) == {}
    assert strategy_arguments(dict(type="FSDPStrategy", model_wrapper=dict(
        reshard_after_forward=False))) == {"model_wrapper": {"type": "fsdp2", "reshard_after_forward": False}}  # fmt: skip
    assert strategy_arguments(dict(type="DDPStrategy")) == {}
    with pytest.raises(ValueError, match="'ColossalAIStrategy' is not supported; accepted"):
        strategy_arguments(dict(type="ColossalAIStrategy"))
    with pytest.raises(TypeError, match="strategy must be dict"):
        strategy_arguments("FSDPStrategy")
    with pytest.raises(ValueError, match="not both"):
        FlexibleRunner(Stack(), strategy=dict(type="FSDPStrategy"), model_wrapper="separate")


def test_deepspeed_strategy_without_deepspeed_is_one_line():
    pytest.importorskip("accelerate")
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs DeepSpeed .* use strategy=dict"):
            strategy_arguments(dict(type="DeepSpeedStrategy", zero_optimization=dict(stage=3)))
    else:
        pytest.skip("DeepSpeed is installed: the refusal does not apply")

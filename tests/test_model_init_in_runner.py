"""The Runner initialises a model from its init_cfg when training starts (MMEngine does);
loaded weights win over it, and a model without any init_cfg keeps its own weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from engine import BaseModel, Runner
from engine.checkpoint.io import save_tensors


class Net(BaseModel):
    def __init__(self, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.fc = nn.Linear(2, 1)

    def forward(self, x, y, mode="tensor"):
        if mode == "loss":
            return {"loss": (self.fc(x) - y).pow(2).mean()}
        return self.fc(x)


def _train(model: Net, tmp_path, **kwargs) -> Net:
    data = [(torch.ones(2), torch.zeros(1))] * 2
    runner = Runner(
        model,
        work_dir=tmp_path / "run",
        train_dataloader=DataLoader(data, batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.0)),  # lr 0: weights stay put
        default_hooks=dict(logger=None, checkpoint=None),
        **kwargs,
    )
    runner.train()
    return model


def test_init_cfg_is_applied_when_training_starts(tmp_path):
    model = _train(
        Net(init_cfg=dict(type="Constant", val=0.25, bias=-1.0, layer="Linear")), tmp_path
    )
    assert torch.equal(model.fc.weight, torch.full((1, 2), 0.25))
    assert torch.equal(model.fc.bias, torch.tensor([-1.0]))


def test_a_model_without_init_cfg_keeps_its_weights(tmp_path):
    model = Net()
    before = model.fc.weight.detach().clone()
    _train(model, tmp_path)
    assert torch.equal(model.fc.weight, before)


def test_load_from_wins_over_init_cfg(tmp_path):
    weights = tmp_path / "w.safetensors"
    save_tensors(weights, {"fc.weight": torch.full((1, 2), 3.0), "fc.bias": torch.tensor([2.0])})
    model = Net(init_cfg=dict(type="Constant", val=0.25, layer="Linear"))
    _train(model, tmp_path, load_from=str(weights))
    assert torch.equal(model.fc.weight, torch.full((1, 2), 3.0))

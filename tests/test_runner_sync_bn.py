"""A model with SyncBatchNorm trains in one process: the Runner reverts it, as MMEngine does."""

import torch
from torch import nn
from torch.utils.data import DataLoader

from engine import BaseModel, Runner


class SyncBNModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.bn = nn.SyncBatchNorm(1, affine=False, momentum=1.0)
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x, mode):
        return {"loss": (self.w * self.bn(x)).sum()}


def test_single_process_runner_reverts_sync_batchnorm_and_trains():
    x = torch.tensor([[1.0], [3.0]])  # batch mean 2.0
    runner = Runner(
        model=SyncBNModel(), work_dir=None,
        train_dataloader=DataLoader([{"x": x}], batch_size=None),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)), nan_policy="ignore",
    )  # fmt: skip
    bn = runner.model.bn
    assert not isinstance(bn, nn.SyncBatchNorm) and isinstance(bn, nn.modules.batchnorm._BatchNorm)
    runner.train()  # SyncBatchNorm itself raises in training without a process group
    # momentum 1.0: the running mean is the last batch's mean
    assert bn.running_mean.item() == 2.0

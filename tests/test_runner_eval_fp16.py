"""Runner.val()/test() honour val_cfg/test_cfg ``fp16=True`` (float16 autocast), as MMEngine."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from engine import BaseMetric, BaseModel, Runner


class LinearModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.dtypes = []

    def forward(self, x, mode):
        out = self.linear(x)
        self.dtypes.append(out.dtype)
        return [out.detach()]


class Count(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend(len(s) for s in data_samples)

    def compute_metrics(self, results):
        return {"n": float(sum(results))}


@pytest.mark.parametrize("fp16", [False, True])
def test_eval_cfg_fp16_runs_under_float16_autocast(fp16):
    loader = DataLoader([{"x": torch.ones(1)}] * 2, batch_size=2)
    model = LinearModel()
    runner = Runner(
        model=model, work_dir=None, val_dataloader=loader, val_evaluator=Count(),
        test_dataloader=loader, test_evaluator=Count(),
        val_cfg=dict(fp16=fp16), test_cfg=dict(fp16=fp16),
    )  # fmt: skip
    assert runner.val() == {"n": 2.0} and runner.test() == {"n": 2.0}
    expected = torch.float16 if fp16 else torch.float32
    assert model.dtypes == [expected, expected]  # one batch each for val and test

"""engine.model helpers MMEngine exports: BaseTTAModel, stack_batch, merge_dict, SyncBN."""

import pytest
import torch
from torch import nn

from engine.model import (
    BaseModel,
    BaseTTAModel,
    convert_sync_batchnorm,
    merge_dict,
    revert_sync_batchnorm,
    stack_batch,
)
from engine.model.efficient_conv_bn_eval import turn_on_efficient_conv_bn_eval_for_single_model


class Echo(BaseModel):
    """Predicts its data samples times the input, so merged values are checkable."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, inputs, data_samples, mode="tensor"):
        return [i * s for i, s in zip(inputs, data_samples)]


class SumTTA(BaseTTAModel):
    def merge_preds(self, data_samples_list):
        return [sum(views) for views in data_samples_list]


def test_tta_runs_each_view_and_merges_per_sample():
    tta = SumTTA(Echo())
    # two samples, two views each: view 0 = inputs [1, 2], view 1 = inputs [10, 20]
    batch = {"inputs": [[1, 2], [10, 20]], "data_samples": [[3, 4], [5, 6]]}
    assert tta.test_step(batch) == [1 * 3 + 10 * 5, 2 * 4 + 20 * 6]
    assert tta.test_step(([[1, 2], [10, 20]], [[3, 4], [5, 6]])) == [53, 128]
    assert isinstance(SumTTA(dict(type=Echo)).module, Echo)
    with pytest.raises(TypeError, match="nn.Module or a dict"):
        SumTTA([Echo()])


def test_stack_batch_pads_bottom_right_to_the_divisor():
    a, b = torch.ones(1, 2, 3), torch.full((1, 3, 1), 2.0)
    out = stack_batch([a, b], pad_size_divisor=4, pad_value=-1)
    assert out.shape == (2, 1, 4, 4)
    assert out[0, 0, :2, :3].eq(1).all() and out[0, 0, 2:].eq(-1).all()
    assert out[1, 0, :3, 0].eq(2).all() and out[1, 0, :, 1:].eq(-1).all()
    with pytest.raises(ValueError, match="different ranks"):
        stack_batch([torch.ones(1, 2), torch.ones(1, 2, 3)])


def test_merge_dict_and_sync_batchnorm_round_trip():
    assert merge_dict({"a": 1, "b": 2}, {"b": 3}) == {"a": 1, "b": 3}
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    net[1].running_mean.fill_(0.5)
    synced = convert_sync_batchnorm(net)
    assert isinstance(synced[1], nn.SyncBatchNorm)
    plain = revert_sync_batchnorm(synced)
    assert not isinstance(plain[1], nn.SyncBatchNorm)
    assert plain[1].running_mean.tolist() == [0.5, 0.5]
    plain.train()
    assert plain(torch.randn(2, 1, 3, 3)).shape == (2, 2, 3, 3)  # runs without a process group


class ConvBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)
        self.conv2, self.bn2 = nn.Conv2d(3, 3, 1, bias=False), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv1(x)
        return self.bn2(self.conv2(self.bn1(y))) + y.mean()  # conv1's output is used twice


def test_efficient_conv_bn_eval_matches_the_unfused_pair():
    torch.manual_seed(0)
    model = ConvBn()
    for bn in (model.bn1, model.bn2):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-1, 1)
    model.eval()
    x = torch.randn(2, 2, 6, 6)
    expected = model(x)
    keys = list(model.state_dict())
    turn_on_efficient_conv_bn_eval_for_single_model(model)
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    assert list(model.state_dict()) == keys
    code = model.forward.__self__.code
    assert "bn1 = self.bn1(conv1)" in code and "self.bn2(" not in code  # conv1 feeds two users

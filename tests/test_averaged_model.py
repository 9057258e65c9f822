"""engine.model averaged models against their formulas, in float32 and bf16."""

import pytest
import torch
from torch import nn

from engine.model import (
    ExponentialMovingAverage,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
)


def model_with(value: float, dtype=torch.float32) -> nn.Module:
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1)).to(dtype)
    net[0].weight.data.fill_(value)
    return net


def run(avg, net, values):
    for v in values:
        net[0].weight.data.fill_(v)
        net[1].running_mean.fill_(v)
        avg.update_parameters(net)
    return avg.module[0].weight.item()


def test_ema_after_three_updates_is_the_formula():
    net = model_with(0.0)
    ema = ExponentialMovingAverage(net, momentum=0.25)
    got = run(ema, net, [4.0, 8.0, 16.0])
    expected = 4.0  # the first update copies
    for v in (8.0, 16.0):
        expected = (1 - 0.25) * expected + 0.25 * v
    assert got == pytest.approx(expected) and ema.steps.item() == 3
    assert ema.module[1].running_mean.item() == 16.0  # buffers copied, not averaged


def test_ema_with_buffers_and_interval():
    net = model_with(0.0)
    ema = ExponentialMovingAverage(net, momentum=0.5, interval=2, update_buffers=True)
    run(ema, net, [2.0, 4.0, 6.0, 8.0, 10.0])
    # steps 0 copies 2; steps 2 averages 6; steps 4 averages 10: 2 -> 4 -> 7
    assert ema.module[0].weight.item() == pytest.approx(7.0)
    assert ema.module[1].running_mean.item() == pytest.approx(7.0)


def test_momentum_annealing_and_swa():
    net = model_with(0.0)
    ema = MomentumAnnealingEMA(net, momentum=0.01, gamma=2)
    got = run(ema, net, [3.0, 6.0, 9.0])
    expected = 3.0
    for steps, v in ((1, 6.0), (2, 9.0)):
        m = max(0.01, 2 / (2 + steps))
        expected = (1 - m) * expected + m * v
    assert got == pytest.approx(expected)
    swa = StochasticWeightAverage(net)
    assert run(swa, net, [1.0, 2.0, 6.0]) == pytest.approx(3.0)


def test_bf16_model_average_moves_because_it_is_kept_in_float32():
    net = model_with(1.0, torch.bfloat16)
    ema = ExponentialMovingAverage(net, momentum=0.001)
    run(ema, net, [1.0] + [1.25] * 100)
    expected = 1.0 + 0.25 * (1 - 0.999**100)  # 1.0238
    shadow = ema.fp32_average._buffers["0__weight"]
    assert shadow.dtype == torch.float32 and shadow.item() == pytest.approx(expected, rel=1e-5)
    assert ema.module[0].weight.dtype == torch.bfloat16
    assert ema.module[0].weight.item() == torch.tensor(expected).bfloat16().item()
    # What a bf16 average would do: each step adds 0.001 * 0.25, below half a bf16 ulp at 1.0.
    stuck = torch.tensor(1.0, dtype=torch.bfloat16)
    for _ in range(100):
        stuck.lerp_(torch.tensor(1.25, dtype=torch.bfloat16), 0.001)
    assert stuck.item() == 1.0


def test_state_dict_round_trip_continues_exactly():
    net = model_with(0.0, torch.bfloat16)
    a = ExponentialMovingAverage(net, momentum=0.1)
    run(a, net, [1.0, 2.0, 3.0])
    b = ExponentialMovingAverage(model_with(5.0, torch.bfloat16), momentum=0.1)
    b.load_state_dict(a.state_dict())
    assert b.steps.item() == 3
    run(a, net, [4.0])
    run(b, net, [4.0])
    assert torch.equal(a.fp32_average._buffers["0__weight"], b.fp32_average._buffers["0__weight"])


class DistributedDataParallel(nn.Module):
    """Stands in for torch's DDP (same name, holds `.module`, adds `module.` to the names)."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_names_are_wrapper_free():
    inner = nn.Linear(1, 1, bias=False)
    gan = nn.Module()
    gan.generator = DistributedDataParallel(inner)
    ema = ExponentialMovingAverage(gan, momentum=0.5)
    assert list(ema.module.state_dict()) == ["generator.weight"]
    assert isinstance(ema.module.generator, nn.Linear)
    with pytest.raises(ValueError, match=r"momentum must be in range \(0.0, 1.0\)"):
        ExponentialMovingAverage(inner, momentum=1.0)
    with pytest.raises(AssertionError, match="gamma must be greater than 0"):
        MomentumAnnealingEMA(inner, gamma=0)


def test_a_wrapped_source_updates_the_plain_copy():
    inner = nn.Linear(1, 1, bias=False)
    inner.weight.data.fill_(2.0)
    gan = nn.Module()
    gan.generator = DistributedDataParallel(inner)
    ema = ExponentialMovingAverage(gan, momentum=0.5)
    ema.update_parameters(gan)
    inner.weight.data.fill_(4.0)
    ema.update_parameters(gan)
    assert ema.module.generator.weight.item() == 3.0

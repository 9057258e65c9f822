"""`turn_on_activation_checkpointing`: same outputs and gradients as plain torch, with the
checkpointed modules' forward recomputed in the backward pass."""

import copy

import pytest
import torch
from torch import nn

from engine.runner import turn_on_activation_checkpointing


class Counted(nn.Module):
    """A block that counts its forward passes (recomputation runs the forward again)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 8)
        self.drop = nn.Dropout(0.5)
        self.calls = 0

    def forward(self, x, scale=1.0):
        self.calls += 1
        return self.drop(torch.relu(self.linear(x))) * scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.body = nn.Sequential(Counted(), Counted())
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        x = self.stem(x)
        x = self.body[0](x, scale=2.0)  # a keyword argument goes through too
        return self.head(self.body[1](x))


def _grads(model, x, seed):
    torch.manual_seed(seed)  # the same dropout masks in both runs
    x = x.clone().requires_grad_(True)
    out = model(x)
    out.sum().backward()
    return out.detach(), x.grad, {n: p.grad for n, p in model.named_parameters()}


def test_same_outputs_and_gradients_as_plain_torch():
    torch.manual_seed(0)
    plain = Net()
    checkpointed = copy.deepcopy(plain)
    turn_on_activation_checkpointing(checkpointed, ["body.0", "body.1"])
    x = torch.randn(16, 4)
    out, x_grad, grads = _grads(plain, x, seed=3)
    out2, x_grad2, grads2 = _grads(checkpointed, x, seed=3)
    torch.testing.assert_close(out2, out)
    torch.testing.assert_close(x_grad2, x_grad)
    for name in grads:
        torch.testing.assert_close(grads2[name], grads[name], msg=name)
    # forward once, then once more in backward: the activations were recomputed
    assert [m.calls for m in checkpointed.body] == [2, 2]
    assert [m.calls for m in plain.body] == [1, 1]


def test_no_recomputation_without_grad_and_twice_is_once():
    model = Net()
    turn_on_activation_checkpointing(model, "body.0")
    turn_on_activation_checkpointing(model, "body.0")  # not wrapped twice
    model(torch.randn(2, 4)).sum().backward()
    assert model.body[0].calls == 2
    with torch.no_grad():
        model(torch.randn(2, 4))
    assert model.body[0].calls == 3


def test_unknown_module_names_fail_before_any_change():
    model = Net()
    forward = model.stem.forward
    with pytest.raises(ValueError, match="'body.7' is not a sub-module of Net"):
        turn_on_activation_checkpointing(model, ["stem", "body.7"])
    assert model.stem.forward == forward

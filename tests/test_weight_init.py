"""engine.model weight init: MMEngine's helpers, init_cfg by name, BaseModule.init_weights."""

import logging
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from engine.model import (
    BaseModel,
    BaseModule,
    ModuleDict,
    ModuleList,
    Sequential,
    bias_init_with_prob,
    constant_init,
    initialize,
    kaiming_init,
    normal_init,
    trunc_normal_init,
    uniform_init,
    xavier_init,
)


def seeded(fill, shape):
    """The same draw torch itself makes with seed 0: the reference for the random inits."""
    torch.manual_seed(0)
    t = torch.empty(shape)
    fill(t)
    return t


@pytest.mark.parametrize(
    "helper, kwargs, reference",
    [
        (normal_init, dict(mean=1.0, std=0.5), lambda t: nn.init.normal_(t, 1.0, 0.5)),
        (uniform_init, dict(a=-3, b=-2), lambda t: nn.init.uniform_(t, -3, -2)),
        (
            xavier_init,
            dict(gain=2, distribution="uniform"),
            lambda t: nn.init.xavier_uniform_(t, 2),
        ),
        (kaiming_init, dict(), lambda t: nn.init.kaiming_normal_(t, mode="fan_out")),
        (trunc_normal_init, dict(std=0.02), lambda t: nn.init.trunc_normal_(t, 0, 0.02, -2, 2)),
    ],
)
def test_random_helpers_draw_what_torch_draws_and_fill_the_bias(helper, kwargs, reference):
    layer = nn.Linear(4, 3)
    torch.manual_seed(0)
    helper(layer, bias=0.25, **kwargs)
    assert torch.equal(layer.weight.data, seeded(reference, (3, 4)))
    assert layer.bias.tolist() == [0.25] * 3


def test_constant_and_bias_prob():
    layer = nn.Conv2d(1, 2, 1)
    constant_init(layer, 3.0, bias=-1.0)
    assert layer.weight.flatten().tolist() == [3.0, 3.0] and layer.bias.tolist() == [-1.0, -1.0]
    # sigmoid(bias) == prior probability: -log((1 - 0.01) / 0.01) = -log(99)
    assert bias_init_with_prob(0.01) == pytest.approx(-math.log(99))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.feat = nn.Conv2d(1, 1, 1)
        self.reg = nn.Conv2d(1, 1, 1)
        self.fc = nn.Linear(1, 1)


def test_layer_selects_by_class_and_override_reinitialises_a_child():
    net = Net()
    initialize(
        net,
        dict(type="Constant", layer=["Conv2d", "Linear"], val=1, bias=2,
             override=dict(type="Constant", name="reg", val=3, bias=4)),
    )  # fmt: skip
    assert net.feat.weight.item() == 1 and net.fc.bias.item() == 2
    assert net.reg.weight.item() == 3 and net.reg.bias.item() == 4
    # layer matches base classes too: _ConvNd covers every convolution
    initialize(net, dict(type="Constant", layer="_ConvNd", val=5))
    assert net.feat.weight.item() == 5 and net.fc.weight.item() == 1
    with pytest.raises(ValueError, match="init_cfg type 'Nope' is unknown"):
        initialize(net, dict(type="Nope"))
    with pytest.raises(RuntimeError, match="'head', which is not a sub-module"):
        initialize(net, dict(type="Constant", val=1, override=dict(name="head")))


class Block(BaseModule):
    def __init__(self, init_cfg=None):
        super().__init__(init_cfg)
        self.conv = nn.Conv2d(1, 1, 1)


class Outer(BaseModule):
    def __init__(self, init_cfg=None):
        super().__init__(init_cfg)
        self.inner = Block(init_cfg=dict(type="Constant", layer="Conv2d", val=7))
        self.head = nn.Conv2d(1, 1, 1)


def test_inner_init_cfg_wins_and_init_runs_once(caplog):
    outer = Outer(init_cfg=dict(type="Constant", layer="Conv2d", val=1, bias=0))
    with caplog.at_level(logging.INFO, logger="engine"):
        outer.init_weights()
    assert outer.inner.conv.weight.item() == 7 and outer.head.weight.item() == 1
    assert outer.is_init and outer.inner.is_init
    assert "init_weights of Outer: 4 of 4 parameter tensors initialized" in caplog.text
    outer.head.weight.data.fill_(9)
    with caplog.at_level(logging.WARNING, logger="engine"):
        outer.init_weights()
    assert outer.head.weight.item() == 9 and "called more than once" in caplog.text


def test_pretrained_with_prefix_loads_last(tmp_path):
    source = {"backbone.conv.weight": torch.full((1, 1, 1, 1), 4.0), "head.w": torch.zeros(1)}
    torch.save({"state_dict": source}, tmp_path / "det.pth")
    save_file(source, tmp_path / "det.safetensors")
    for file in ("det.pth", "det.safetensors"):
        block = Block(
            init_cfg=[
                dict(type="Pretrained", checkpoint=str(tmp_path / file), prefix="backbone."),
                dict(type="Constant", layer="Conv2d", val=1, bias=5),
            ]
        )
        block.init_weights()
        # Pretrained comes after Constant whatever the list order; unmatched keys stay.
        assert block.conv.weight.item() == 4.0 and block.conv.bias.item() == 5.0
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        initialize(block, dict(type="Pretrained", checkpoint="torchvision://resnet50"))


def test_containers_take_init_cfg():
    for container in (
        Sequential(nn.Linear(1, 1), init_cfg=dict(type="Constant", layer="Linear", val=2)),
        ModuleList([nn.Linear(1, 1)], init_cfg=dict(type="Constant", layer="Linear", val=2)),
        ModuleDict({"a": nn.Linear(1, 1)}, init_cfg=dict(type="Constant", layer="Linear", val=2)),
    ):
        container.init_weights()
        assert next(container.parameters()).item() == 2


def test_base_model_takes_init_cfg_and_still_works_without_super_init():
    class WithCfg(BaseModel):
        def __init__(self):
            super().__init__(init_cfg=dict(type="Constant", layer="Linear", val=0.5, bias=0))
            self.fc = nn.Linear(2, 1)

        def forward(self, x, mode="tensor"):
            return self.fc(x)

    class NoSuper(BaseModel):  # as MMEngine's migration guide writes some models
        def __init__(self):
            self.fc = nn.Linear(2, 1)

        def forward(self, x, mode="tensor"):
            return self.fc(x)

    model = WithCfg()
    model.init_weights()
    assert model.fc.weight.tolist() == [[0.5, 0.5]] and model.init_cfg["val"] == 0.5
    bare = NoSuper()
    bare.init_weights()  # nothing configured: the weights are left as they are
    assert bare.is_init and bare.fc.weight.shape == (1, 2)

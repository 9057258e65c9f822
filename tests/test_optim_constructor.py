"""MMEngine's optimizer constructor (paramwise_cfg, constructor=) and OptimWrapper/Dict API names."""

import pytest
import torch
from torch import nn

from engine import DefaultOptimWrapperConstructor, OptimWrapper, OptimWrapperDict
from engine.optim import build_optim_wrapper

LR, WD = 0.01, 0.9


class Sub(nn.Module):
    def __init__(self):
        super().__init__()
        self.param1 = nn.Parameter(torch.ones(1))
        self.conv1 = nn.Conv2d(4, 4, 1, groups=4)  # depth-wise, with bias
        self.gn = nn.GroupNorm(2, 4)


class Example(nn.Module):
    def __init__(self):
        super().__init__()
        self.param1 = nn.Parameter(torch.ones(1))
        self.conv1 = nn.Conv2d(3, 4, 1, bias=False)
        self.conv2 = nn.Conv2d(4, 2, 1)
        self.bn = nn.BatchNorm2d(2)
        self.sub = Sub()


NAMES = [
    "param1", "conv1.weight", "conv2.weight", "conv2.bias", "bn.weight", "bn.bias",
    "sub.param1", "sub.conv1.weight", "sub.conv1.bias", "sub.gn.weight", "sub.gn.bias",
]  # fmt: skip


def _groups(paramwise_cfg, model=None):
    cfg = dict(optimizer=dict(type="SGD", lr=LR, weight_decay=WD, momentum=0.5))
    ow = build_optim_wrapper(model or Example(), dict(cfg, paramwise_cfg=paramwise_cfg))
    return {n: (g["lr"], g["weight_decay"]) for n, g in zip(NAMES, ow.optimizer.param_groups)}


def test_no_decay_on_norms_and_biases():
    got = _groups(dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
    no_decay = {
        "conv2.bias",
        "bn.weight",
        "bn.bias",
        "sub.conv1.bias",
        "sub.gn.weight",
        "sub.gn.bias",
    }
    assert got == {n: (LR, 0.0 if n in no_decay else WD) for n in NAMES}


def test_every_multiplier_as_mmengine_orders_them():
    cfg = dict(
        bias_lr_mult=2, bias_decay_mult=0.5, norm_decay_mult=0, dwconv_decay_mult=0.1,
        flat_decay_mult=0.3,
    )  # fmt: skip
    got = _groups(cfg)
    expected = {
        "param1": (LR, WD * 0.3),  # flat (1-D)
        "conv1.weight": (LR, WD),
        "conv2.weight": (LR, WD),
        "conv2.bias": (LR * 2, WD * 0.5),  # bias rules
        "bn.weight": (LR, 0.0), "bn.bias": (LR, 0.0),  # norm wins over bias; no bias lr
        "sub.param1": (LR, WD * 0.3),
        "sub.conv1.weight": (LR, WD * 0.1),  # depth-wise
        "sub.conv1.bias": (LR * 2, WD * 0.5),  # bias before depth-wise
        "sub.gn.weight": (LR, 0.0), "sub.gn.bias": (LR, 0.0),
    }  # fmt: skip
    assert set(got) == set(expected)
    for name, values in expected.items():
        assert got[name] == pytest.approx(values), name


def test_custom_keys_longest_first_and_exclusive():
    cfg = dict(
        custom_keys={"sub": dict(lr_mult=0.1), "sub.gn": dict(lr_mult=0.01, decay_mult=0)},
        bias_lr_mult=2,
    )
    got = _groups(cfg)
    assert got["sub.gn.weight"] == pytest.approx((LR * 0.01, 0.0))  # "sub.gn" is longer
    assert got["sub.conv1.bias"] == pytest.approx((LR * 0.1, WD))  # no bias rule on a custom key
    assert got["conv2.bias"] == pytest.approx((LR * 2, WD))


def test_shared_parameters_and_frozen_ones():
    model = Example()
    model.sub.conv1 = model.conv2 = nn.Conv2d(4, 4, 1, groups=4)  # shared
    cfg = dict(optimizer=dict(type="SGD", lr=LR, weight_decay=WD))
    with pytest.raises(ValueError, match="appears twice.*bypass_duplicate=True"):
        build_optim_wrapper(model, dict(cfg, paramwise_cfg=dict(bias_decay_mult=0)))
    ow = build_optim_wrapper(model, dict(cfg, paramwise_cfg=dict(bypass_duplicate=True)))
    placed = [p for g in ow.optimizer.param_groups for p in g["params"]]
    assert len(placed) == len({id(p) for p in model.parameters()})
    model.bn.requires_grad_(False)
    ow = build_optim_wrapper(model, dict(cfg, paramwise_cfg=dict(bypass_duplicate=True)))
    assert all(p.requires_grad for g in ow.optimizer.param_groups for p in g["params"])


def test_bad_paramwise_cfg_is_refused_before_building():
    cfg = dict(optimizer=dict(type="SGD", lr=LR))
    with pytest.raises(ValueError, match="base_wd should not be None"):
        build_optim_wrapper(Example(), dict(cfg, paramwise_cfg=dict(norm_decay_mult=0)))
    with pytest.raises(ValueError, match="unknown keys \\['norm_decay'\\]"):
        build_optim_wrapper(Example(), dict(cfg, paramwise_cfg=dict(norm_decay=0)))
    with pytest.raises(TypeError, match="paramwise_cfg should be None or a dict"):
        DefaultOptimWrapperConstructor(cfg, ["x"])


def test_a_user_constructor_class():
    class HeadOnly(DefaultOptimWrapperConstructor):
        def __call__(self, model, accelerator=None):
            optimizer = torch.optim.SGD(model.conv2.parameters(), lr=self.base_lr)
            return OptimWrapper(
                optimizer, accumulative_counts=self.optim_wrapper_cfg["accumulative_counts"]
            )

    model = Example()
    ow = build_optim_wrapper(
        model, dict(constructor=HeadOnly, optimizer=dict(type="SGD", lr=0.3), accumulative_counts=2)
    )
    assert [p for g in ow.param_groups for p in g["params"]] == list(model.conv2.parameters())
    assert ow.accumulative_counts == 2 and ow.get_lr() == {"lr": [0.3]}


def test_optim_wrapper_dict_is_keyed_by_member_like_mmengine():
    a = OptimWrapper(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.8))
    b = OptimWrapper(torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=0.2, betas=(0.7, 0.9)))
    ow = OptimWrapperDict(a=a, b=b)
    assert ow.param_groups == {"a": a.param_groups, "b": b.param_groups}
    assert ow.get_lr() == {"a.lr": [0.1], "b.lr": [0.2]}
    assert ow.get_momentum() == {"a.momentum": [0.8], "b.momentum": [0.7]}
    assert "name: a" in repr(ow)
    with pytest.raises(TypeError, match="only accepts OptimWrapper members: 'c' is a SGD"):
        OptimWrapperDict(c=torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))


def test_optim_context_enters_no_sync_of_a_hand_made_ddp_without_accelerator():
    class FakeDDP(nn.Linear):
        entered = 0

        def no_sync(self):
            FakeDDP.entered += 1
            return torch.enable_grad()

    model = FakeDDP(1, 1)
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=3)
    ow.initialize_count_status(model, 0, 6)
    for _ in range(6):
        with ow.optim_context(model):
            loss = model(torch.ones(1, 1)).sum()
        ow.update_params(loss)
    assert FakeDDP.entered == 4  # micro-batches 1, 2 and 4, 5: not the windows' last
    assert ow.max_counts == 6 and ow.clip_grad_kwargs is None


def test_mmengine_method_signatures():
    p = nn.Parameter(torch.ones(1))
    ow = OptimWrapper(torch.optim.SGD([p], lr=1.0))
    ow.update_params((p * 2).sum(), step_kwargs={}, zero_kwargs=dict(set_to_none=False))
    assert p.item() == -1.0 and p.grad is not None and p.grad.item() == 0.0
    ow.backward((p * 3).sum(), retain_graph=False)
    ow.step()
    ow.zero_grad(set_to_none=True)
    assert p.item() == -4.0 and p.grad is None and ow.inner_count == 2

"""engine.compat: the seed's MMCV example and an MMCV-style GAN train on engine; MMCV's
optimizer_config, lr_config and log_config translate into engine's wrappers, schedules, hooks."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn as nn
from torch.optim import SGD
from torch.utils.data import DataLoader

from engine import BaseModel, Hook
from engine import Runner as EngineRunner
from engine.compat import (
    IterBasedRunner,
    Runner,
    as_engine_model,
    get_logger,
    log_config_to_hooks,
    lr_config_to_schedules,
)
from engine.hooks.logger_hook import LoggerHook
from run_files import run_file


# -- the seed's example, as the migration guide writes it (imports aside) --------------
class MMCVToyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, img, label, return_loss=False):
        feat = self.linear(img)
        loss1 = (feat - label).pow(2)
        loss2 = (feat - label).abs()
        loss = (loss1 + loss2).sum()
        return dict(
            loss=loss,
            num_samples=len(img),
            log_vars=dict(loss1=loss1.sum().item(), loss2=loss2.sum().item()),
        )

    def train_step(self, data, optimizer=None):
        return self(*data, return_loss=True)

    def val_step(self, data, optimizer=None):
        return self(*data, return_loss=False)


class MMEngineToyModel(BaseModel):
    """The guide's rewrite. Its losses are summed, as its `train_step` comment says: the
    guide's per-sample losses would be averaged by parse_losses, 1/batch of MMCV's gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, img, label, mode):
        feat = self.linear(img)
        if mode == "loss":
            loss1 = (feat - label).pow(2)
            loss2 = (feat - label).abs()
            return dict(loss1=loss1.sum(), loss2=loss2.sum())
        return [_feat for _feat in feat]


def _data(n=50):
    # The guide's data is constant; varied inputs make the comparison mean something.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 1, generator=g)
    return [(x[i], 3 * x[i] + 1) for i in range(n)]


def _seed_weights():
    torch.manual_seed(0)
    return MMCVToyModel().state_dict()


@pytest.mark.parametrize("grad_clip", [None, dict(max_norm=0.5)])
def test_the_seeds_mmcv_example_equals_the_basemodel_path(tmp_path, grad_clip):
    train_dataloader = DataLoader(_data(), batch_size=2)
    model = MMCVToyModel()
    model.load_state_dict(_seed_weights())
    optimizer = SGD(model.parameters(), lr=0.01)
    logger = get_logger("demo")
    lr_config = dict(policy="step", step=[2, 3])
    optimizer_config = dict(grad_clip=grad_clip)
    log_config = dict(interval=10, hooks=[dict(type="TextLoggerHook")])
    runner = Runner(
        model=model, work_dir=tmp_path / "mmcv", optimizer=optimizer, logger=logger, max_epochs=5
    )
    runner.register_training_hooks(
        lr_config=lr_config, optimizer_config=optimizer_config, log_config=log_config
    )
    runner.run([train_dataloader], [("train", 1)])

    rewritten = MMEngineToyModel()
    rewritten.load_state_dict(_seed_weights())
    EngineRunner(
        model=rewritten,
        work_dir=tmp_path / "engine",
        train_dataloader=DataLoader(_data(), batch_size=2),
        train_cfg=dict(by_epoch=True, max_epochs=5),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01), clip_grad=grad_clip),
        param_scheduler=[dict(type="MultiStepLR", milestones=[2, 3], gamma=0.1)],
        default_hooks=dict(checkpoint=None),
    ).train()
    # Same keys (the adapter adds none), same weights; and they moved.
    assert model.state_dict().keys() == rewritten.state_dict().keys()
    # MMCV's log_vars (floats) are logged like any engine run's scalars, every 10 iterations.
    lines = run_file(tmp_path / "mmcv", "scalars.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert len(logged) == 10 and {"loss", "loss1", "loss2", "lr"} <= set(logged[0])
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, rewritten.state_dict()[key], atol=1e-6, rtol=0)
        assert not torch.equal(value, _seed_weights()[key])
    assert runner.runner.optim_wrapper.get_lr()["lr"] == [pytest.approx(0.01 * 0.1**2)]


# -- an MMCV-style GAN that steps its optimizers itself ---------------------------------
class MMCVGAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))

    def train_step(self, data, optimizer):
        real, z = data["real"], data["z"]  # the noise comes with the data: no RNG involved
        bce = nn.functional.binary_cross_entropy_with_logits
        with torch.no_grad():
            fake = self.generator(z)
        d_real, d_fake = self.discriminator(real), self.discriminator(fake)
        loss_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        optimizer["discriminator"].zero_grad()
        loss_d.backward()
        optimizer["discriminator"].step()

        d_gen = self.discriminator(self.generator(z))
        loss_g = bce(d_gen, torch.ones_like(d_gen))
        optimizer["generator"].zero_grad()
        loss_g.backward()
        optimizer["generator"].step()
        return dict(
            log_vars=dict(loss_d=loss_d.item(), loss_g=loss_g.item()), num_samples=len(real)
        )


def _gan_data(n=12):
    g = torch.Generator().manual_seed(1)
    return [
        dict(real=torch.randn(2, generator=g) + 2, z=torch.randn(2, generator=g)) for _ in range(n)
    ]


def test_an_mmcv_gan_stepping_its_optimizers_equals_plain_pytorch(tmp_path):
    torch.manual_seed(0)
    gan = MMCVGAN()
    reference = copy.deepcopy(gan)
    optimizer = dict(generator=dict(type="Adam", lr=1e-3), discriminator=dict(type="SGD", lr=0.05))
    runner = IterBasedRunner(model=gan, work_dir=tmp_path, optimizer=optimizer, max_iters=6)
    # MMCV applies lr_config to every optimizer of the dict, each from its own base lr.
    lr_config = dict(policy="step", step=[3], gamma=0.1, by_epoch=False)
    runner.register_training_hooks(lr_config=lr_config, optimizer_config=None)
    runner.run([DataLoader(_gan_data(), batch_size=3)], [("train", 1)])

    opts = dict(
        generator=torch.optim.Adam(reference.generator.parameters(), lr=1e-3),
        discriminator=torch.optim.SGD(reference.discriminator.parameters(), lr=0.05),
    )
    batches = list(DataLoader(_gan_data(), batch_size=3))
    for it in range(6):
        for opt, base in ((opts["generator"], 1e-3), (opts["discriminator"], 0.05)):
            opt.param_groups[0]["lr"] = base * 0.1 ** (it >= 3)
        reference.train_step(batches[it % len(batches)], opts)
    for (key, a), b in zip(gan.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=key)
    assert not torch.equal(gan.generator[0].weight, MMCVGAN().generator[0].weight)


def test_a_model_that_returns_no_loss_needs_self_stepping(tmp_path):
    gan = as_engine_model(MMCVGAN())  # OptimizerHook semantics, but two optimizers
    runner = EngineRunner(
        model=gan, work_dir=None, train_dataloader=DataLoader(_gan_data(), batch_size=3),
        train_cfg=dict(by_epoch=False, max_iters=1),
        optim_wrapper=dict(generator=dict(optimizer=dict(type="SGD", lr=0.1)),
                           discriminator=dict(optimizer=dict(type="SGD", lr=0.1))),
    )  # fmt: skip
    with pytest.raises(TypeError, match="self_stepping=True"):
        runner.train()


# -- lr_config policies: the lr of every iteration, against MMCV's formulas ---------------
class RecordLr(Hook):
    priority = "LOWEST"

    def __init__(self):
        self.lrs = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs.append(runner.optim_wrapper.get_lr()["lr"][0])


def _lrs(tmp_path, lr_config, by_epoch=True, length=3, epoch_len=4):
    model = MMCVToyModel()
    record = RecordLr()
    kwargs = dict(max_epochs=length) if by_epoch else dict(max_iters=length)
    cls = Runner if by_epoch else IterBasedRunner
    runner = cls(model=model, work_dir=None, optimizer=dict(type="SGD", lr=0.1),
                 custom_hooks=[record], **kwargs)  # fmt: skip
    runner.register_training_hooks(lr_config=lr_config, optimizer_config=dict(grad_clip=None))
    runner.run([DataLoader(_data(2 * epoch_len), batch_size=2)], [("train", 1)])
    return record.lrs


def _warm(kind, i, iters, ratio):
    """MMCV's LrUpdaterHook.get_warmup_lr as a factor, written out."""
    if i >= iters:
        return 1.0
    if kind == "constant":
        return ratio
    if kind == "linear":
        return 1 - (1 - i / iters) * (1 - ratio)
    return ratio ** (1 - i / iters)


@pytest.mark.parametrize("warmup", [None, "linear", "constant", "exp"])
def test_step_policy_with_each_warmup(tmp_path, warmup):
    cfg = dict(policy="step", step=[1, 2], gamma=0.5)
    if warmup:
        cfg.update(warmup=warmup, warmup_iters=6, warmup_ratio=0.2)
    lrs = _lrs(tmp_path, cfg)  # 3 epochs of 4 iterations
    expected = [
        0.1 * 0.5 ** sum(e >= s for s in (1, 2)) * (_warm(warmup, i, 6, 0.2) if warmup else 1)
        for i, e in ((i, i // 4) for i in range(12))
    ]
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_cosine_poly_fixed_by_epoch_and_by_iteration(tmp_path):
    cos = _lrs(tmp_path, dict(policy="CosineAnnealing", min_lr_ratio=0.1), length=3)
    target = 0.1 * 0.1
    assert cos == pytest.approx(
        [target + 0.5 * (0.1 - target) * (1 + math.cos(math.pi * (i // 4) / 3)) for i in range(12)]
    )
    cos_it = _lrs(tmp_path, dict(policy="CosineAnnealing", min_lr=0.001, by_epoch=False,
                                 warmup="linear", warmup_iters=3), by_epoch=False, length=10)  # fmt: skip
    assert cos_it == pytest.approx(
        [(0.001 + 0.5 * (0.1 - 0.001) * (1 + math.cos(math.pi * i / 10))) * _warm("linear", i, 3, 0.1)
         for i in range(10)]
    )  # fmt: skip
    poly = _lrs(
        tmp_path,
        dict(policy="poly", power=2.0, min_lr=1e-4, by_epoch=False),
        by_epoch=False,
        length=10,
    )
    assert poly == pytest.approx([(0.1 - 1e-4) * (1 - i / 10) ** 2 + 1e-4 for i in range(10)])
    fixed = _lrs(tmp_path, dict(policy="fixed", warmup="exp", warmup_iters=2, warmup_ratio=0.01,
                                warmup_by_epoch=True), length=3)  # fmt: skip
    # warmup_by_epoch: 2 epochs of 4 iterations warm up
    assert fixed == pytest.approx([0.1 * _warm("exp", i, 8, 0.01) for i in range(12)])


def test_bad_configs_fail_in_one_line():
    with pytest.raises(ValueError, match="policy 'Cyclic' is not supported; accepted: step"):
        lr_config_to_schedules(dict(policy="Cyclic"))
    with pytest.raises(ValueError, match="warmup 'cosine' is unknown"):
        lr_config_to_schedules(dict(policy="fixed", warmup="cosine", warmup_iters=3))
    with pytest.raises(ValueError, match="give max_epochs"):
        lr_config_to_schedules(dict(policy="poly"))
    with pytest.raises(ValueError, match="does not take \\['steps'\\]"):
        lr_config_to_schedules(dict(policy="step", steps=[1]))
    with pytest.raises(ValueError, match="workflow .* is not supported"):
        Runner(model=MMCVToyModel(), optimizer=dict(type="SGD", lr=0.1), max_epochs=1).run(
            [[], []], [("train", 1), ("val", 1)]
        )
    hook, trackers = log_config_to_hooks(
        dict(interval=7, hooks=[dict(type="TextLoggerHook"), dict(type="TensorboardLoggerHook")])
    )
    assert isinstance(hook, LoggerHook) and hook.interval == 7 and trackers == ["tensorboard"]
    with pytest.raises(ValueError, match="log_config hook .*PaviLoggerHook"):
        log_config_to_hooks(dict(hooks=[dict(type="PaviLoggerHook")]))

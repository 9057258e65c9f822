"""Every precision path the Runner can take, with real Accelerate objects, against plain PyTorch.

Paths: the Runner's (the optimizer prepared by Accelerate, then attached) and the direct
``OptimWrapper(optimizer, accelerator)``; the same configurations for both: precision
'no', 'bf16' and fp16 with a loss scaler, windows of 1 and of 3 (7 batches: a last window
of 1), with and without clipping. Accelerate refuses fp16 on a CPU (it runs fp32 without a
scaler), so the fp16 case installs a real ``torch.amp.GradScaler('cpu')`` as the
Accelerator's scaler before anything is prepared: Accelerate's own backward (scale),
AcceleratedOptimizer.step (unscale, inf check, update) and clipping (unscale first) run.
"""

import copy

import pytest
import torch
from accelerate import Accelerator
from torch import nn

from engine import BaseModel, OptimWrapper, Runner
from engine.optim import AmpOptimWrapper

BATCHES = [(torch.randn(4, 3, generator=torch.Generator().manual_seed(i)), i) for i in range(7)]


class Net(BaseModel):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)

    def forward(self, x, i, mode="loss"):
        return {"loss": self.lin(x).float().pow(2).mean() * (1 + i)}


def _accelerator(precision):
    if precision == "fp16-scaler":
        acc = Accelerator(cpu=True, mixed_precision="fp16")
        # What Accelerate sets up on a GPU and refuses on a CPU (see the module docstring):
        # native fp16 autocast and a loss scaler.
        acc.native_amp = True
        acc.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        return acc
    return Accelerator(cpu=True, mixed_precision=precision)


def _reference(model, precision, acc_counts, clip):
    """Plain PyTorch: autocast, windows divided by their size, scaler, clipping."""
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10) if precision == "fp16-scaler" else None
    n = len(BATCHES)
    for k, (x, i) in enumerate(BATCHES, start=1):
        size = min(acc_counts, n - ((k - 1) // acc_counts) * acc_counts)
        dtype = torch.float16 if precision == "fp16-scaler" else torch.bfloat16
        with torch.autocast("cpu", dtype=dtype, enabled=precision != "no"):
            loss = model(x, i)["loss"] / size
        (scaler.scale(loss) if scaler else loss).backward()
        if k % acc_counts == 0 or k == n:
            if scaler:
                scaler.unscale_(opt)
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip["max_norm"])
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad()
    return model


def _direct(model, precision, acc_counts, clip):
    acc = _accelerator(precision)
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ow = OptimWrapper(opt, acc, accumulative_counts=acc_counts, clip_grad=clip)
    ow.initialize_count_status(model, 0, len(BATCHES))
    for x, i in BATCHES:
        with ow.optim_context(model):
            loss = model(x, i)["loss"]
        ow.update_params(loss)
    return model, acc


def _runner(model, precision, acc_counts, clip, tmp_path):
    acc = _accelerator(precision)
    runner = Runner(
        copy.deepcopy(model),
        tmp_path,
        train_dataloader=BATCHES,
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(
            optimizer=dict(type="SGD", lr=0.1, momentum=0.9, foreach=False),
            accumulative_counts=acc_counts,
            clip_grad=clip,
        ),
        accelerator=acc,
        default_hooks=dict(logger=None, checkpoint=None),
    )
    runner.train()
    return runner._raw_model, acc


CONFIGS = [
    (precision, acc_counts, clip)
    for precision in ("no", "bf16", "fp16-scaler")
    for acc_counts in (1, 3)
    for clip in (None, dict(max_norm=0.5))
]


@pytest.mark.parametrize("path", ["runner", "direct"])
@pytest.mark.parametrize(("precision", "acc_counts", "clip"), CONFIGS)
def test_each_path_matches_plain_pytorch(path, precision, acc_counts, clip, tmp_path):
    model = Net()
    reference = _reference(model, precision, acc_counts, clip)
    if path == "runner":
        trained, acc = _runner(model, precision, acc_counts, clip, tmp_path)
    else:
        trained, acc = _direct(model, precision, acc_counts, clip)
    if precision == "fp16-scaler":
        assert acc.scaler.get_scale() == 2.0**10  # no overflow: every update was applied
    tol = dict(rtol=2e-2, atol=2e-3) if precision == "bf16" else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(trained.lin.weight, reference.lin.weight, **tol)
    torch.testing.assert_close(trained.lin.bias, reference.lin.bias, **tol)
    assert not torch.equal(trained.lin.weight, model.lin.weight)


def test_fp16_scaler_state_travels_with_the_wrapper_state():
    model = Net()
    trained, acc = _direct(model, "fp16-scaler", 1, None)
    acc.scaler.update(new_scale=4.0)
    ow = OptimWrapper(torch.optim.SGD(trained.parameters(), lr=0.1), acc)
    state = ow.state_dict()
    assert state["loss_scaler"]["scale"] == 4.0
    assert set(state) == {"state", "param_groups", "loss_scaler"}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_amp_optim_wrapper_on_its_own_matches_autocast_and_grad_scaler(dtype):
    # Without Accelerate's precision the wrapper autocasts itself and, for float16, scales.
    cast = getattr(torch, dtype)
    model = Net()
    ref = copy.deepcopy(model)
    ow = AmpOptimWrapper(
        dtype=dtype,
        loss_scale=dict(init_scale=256.0),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
    )
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0) if dtype == "float16" else None
    assert (ow.loss_scaler is None) == (scaler is None)
    for x, i in BATCHES:
        with ow.optim_context(model):
            assert torch.get_autocast_dtype("cpu") == cast and torch.is_autocast_enabled("cpu")
            loss = model(x, i)["loss"]
        ow.update_params(loss)
        with torch.autocast("cpu", dtype=cast):
            ref_loss = ref(x, i)["loss"]
        if scaler:
            scaler.scale(ref_loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            ref_loss.backward()
            opt.step()
        opt.zero_grad()
    torch.testing.assert_close(model.lin.weight, ref.lin.weight, rtol=0, atol=0)
    if scaler:
        assert ow.state_dict()["loss_scaler"] == scaler.state_dict()


def test_amp_optim_wrapper_arguments():
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    with pytest.raises(TypeError, match="loss_scale must be of type float, dict, or 'dynamic'"):
        AmpOptimWrapper(optimizer=opt, loss_scale="unknown")
    with pytest.raises(ValueError, match="dtype 'int8' is unknown"):
        AmpOptimWrapper(optimizer=opt, dtype="int8")
    fixed = AmpOptimWrapper(16.0, optimizer=opt)
    assert fixed.loss_scaler.get_scale() == 16.0 and fixed._scale_update_param == 16.0
    # Under Accelerate's precision the wrapper leaves autocast and scaling to Accelerate.
    deferred = AmpOptimWrapper(
        dtype="bfloat16", optimizer=opt, accelerator=Accelerator(cpu=True, mixed_precision="bf16")
    )
    assert deferred.loss_scaler is None and deferred.precision == "bf16"

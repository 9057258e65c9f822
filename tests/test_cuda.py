"""Every CUDA path against a plain-PyTorch reference: ``pytest -m cuda`` on a GPU machine.

bench/gpu_check.sh runs these, then bench/gpu.py. A test parametrised over ``DEVICES``
runs its ``cuda`` case only where a GPU is (the ``cuda`` marker, skipped elsewhere) and its
``cpu`` case everywhere, where the CPU has the same path (bf16 autocast, fused AdamW,
token-weighted accumulation, the prefetcher's pass-through). The fp16 loss scaler, the
prefetcher's side stream and compilation for CUDA exist only there.
(compile=True on the CPU: tests/test_speed_features.py.)
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import GradScalerKwargs
from torch import nn
from torch._dynamo.utils import counters

from engine import BaseModel, OptimWrapper, Runner
from engine.runner.prefetch import prefetch_to_device
from run_files import run_file

HAS_CUDA = torch.cuda.is_available()
CUDA = pytest.param(
    "cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")]
)
DEVICES = ["cpu", CUDA]
needs_cuda = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")]
ROOT = Path(__file__).resolve().parents[1]
# fp16's first loss scale: low enough that these small nets do not overflow (2**16 would,
# and the test would then compare skipped updates only)
SCALE = GradScalerKwargs(init_scale=2.0**10)


# -- models and data ----------------------------------------------------------------------
class Regressor(BaseModel):
    def __init__(self, bad_iter: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 1))
        self.bad_iter, self.calls = bad_iter, 0

    def forward(self, x, y, mode="tensor"):
        pred = self.net(x).float()
        if mode != "loss":
            return pred
        loss = F.mse_loss(pred, y)
        self.calls += 1
        if self.calls == self.bad_iter:  # an overflow, as fp16 meets it
            loss = loss * math.inf
        return {"loss": loss}


def batches(n: int = 6, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(size, 16, generator=g), 3 * torch.randn(size, 1, generator=g))
        for _ in range(n)
    ]


def run_runner(model: BaseModel, device: str, **kwargs) -> Runner:
    """Train ``model`` on `batches` in order, one batch per iteration, on `device`."""
    data = [pair for x, y in batches() for pair in zip(x, y)]
    runner = Runner(
        model,
        None,
        train_dataloader=dict(dataset=data, batch_size=8, shuffle=False),
        train_cfg=dict(by_epoch=False, max_iters=6),
        accelerator=Accelerator(
            cpu=device == "cpu",
            mixed_precision=kwargs.pop("precision", "no"),
            kwargs_handlers=[SCALE],
        ),
        default_hooks=dict(logger=None, checkpoint=None),
        **kwargs,
    )
    runner.train()
    return runner


def assert_same_weights(a: nn.Module, b: nn.Module, atol: float) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.detach().cpu(), q.detach().cpu(), rtol=0, atol=atol, msg=name)


# -- prefetching -----------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_prefetch_yields_each_batch_once_in_order_and_is_stream_safe(device):
    host = [{"x": torch.full((512, 1024), float(i)), "i": i} for i in range(24)]
    sums, order = [], []
    for batch in prefetch_to_device(host, torch.device(device)):
        if device == "cuda":
            # A long kernel on the compute stream: the next copy runs beside it; reading
            # the batch must still wait for its own copy, and freeing it must not let a later
            # copy reuse its memory while this step's kernels still read it.
            torch.cuda._sleep(1_000_000)
        assert batch["x"].device.type == device
        sums.append(batch["x"].sum())
        batch["x"].add_(1.0)  # the step writes its batch
        order.append(batch["i"])
        del batch
    assert order == list(range(24))
    assert torch.stack(sums).tolist() == [512 * 1024 * float(i) for i in range(24)]
    if device == "cuda":  # copies: the host tensors are untouched
        assert all(torch.equal(b["x"], torch.full((512, 1024), float(b["i"]))) for b in host)


# -- fp16: the loss scaler with clipping and accumulation ---------------------------------------
@pytest.mark.parametrize("bad_iter", [None, 3])
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=needs_cuda)])
def test_fp16_scaler_clipping_and_accumulation_equal_plain_gradscaler(device, bad_iter):
    torch.manual_seed(0)
    net = Regressor(bad_iter)
    reference = copy.deepcopy(net).to(device)
    accelerator = Accelerator(mixed_precision="fp16", kwargs_handlers=[SCALE])
    model, opt = accelerator.prepare(net, torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9))
    ow = OptimWrapper(opt, accelerator, accumulative_counts=2, clip_grad=dict(max_norm=0.5))
    ow.initialize_count_status(model, 0, 5)  # windows 2 + 2 + 1
    norms = []
    for x, y in batches(5):
        with ow.optim_context(model):
            loss = model(x.to(device), y.to(device), mode="loss")["loss"]
        ow.update_params(loss)
        if ow.last_grad_norm is not None:
            norms.append(float(ow.last_grad_norm))

    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", init_scale=SCALE.init_scale)
    for i, (x, y) in enumerate(batches(5)):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = reference(x.to(device), y.to(device), mode="loss")["loss"]
        scaler.scale(loss / (2 if i < 4 else 1)).backward()
        if i % 2 == 1 or i == 4:
            scaler.unscale_(ref_opt)
            torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
            scaler.step(ref_opt)
            scaler.update()
            ref_opt.zero_grad()
    assert_same_weights(net, reference, atol=1e-6)
    assert accelerator.scaler.get_scale() == scaler.get_scale()
    assert min(n for n in norms if math.isfinite(n)) > 0.5  # the clip binds on every update
    # the window holding the overflow (iterations 2 and 3) is the one the scaler skipped
    assert [not math.isfinite(n) for n in norms] == [False, bad_iter is not None, False]


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=needs_cuda)])
def test_nan_skip_under_the_scaler_equals_gradscaler_skipping_that_step(device):
    torch.manual_seed(0)
    net = Regressor(bad_iter=3)
    reference = copy.deepcopy(net).to(device)
    runner = run_runner(
        net,
        device,
        precision="fp16",
        nan_policy="skip",
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
    )
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cuda", init_scale=SCALE.init_scale)
    for x, y in batches():
        with torch.autocast("cuda", dtype=torch.float16):
            loss = reference(x.to(device), y.to(device), mode="loss")["loss"]
        scaler.scale(loss).backward()
        scaler.step(ref_opt)
        scaler.update()
        ref_opt.zero_grad()
    assert_same_weights(runner._raw_model, reference, atol=1e-6)
    assert runner.accelerator.scaler.get_scale() == scaler.get_scale()


# -- bf16 and fused AdamW through the Runner ------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_bf16_fused_adamw_runner_equals_plain_autocast_loop(device):
    torch.manual_seed(0)
    net = Regressor()
    reference = copy.deepcopy(net).to(device)
    runner = run_runner(
        net,
        device,
        precision="bf16",
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-2, weight_decay=0.1)),
    )
    assert runner.optim_wrapper._inner_optimizer.defaults["fused"] is True
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    for x, y in batches():
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = reference(x.to(device), y.to(device), mode="loss")["loss"]
        loss.backward()
        ref_opt.step()
        ref_opt.zero_grad()
    # fused and for-loop AdamW round differently in the last bits: 1e-5 after 6 updates
    assert_same_weights(runner._raw_model, reference, atol=1e-5)


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=needs_cuda)])
def test_compile_true_equals_eager_on_the_device(device):
    torch.manual_seed(0)
    net = Regressor()
    eager_net = copy.deepcopy(net)
    opt = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9))
    counters.clear()
    compiled = run_runner(net, device, optim_wrapper=opt, compile=True)
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo did capture the forward
    eager = run_runner(eager_net, device, optim_wrapper=opt)
    assert_same_weights(compiled._raw_model, eager._raw_model, atol=1e-5)


# -- token-weighted accumulation on the device -------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_token_weighted_accumulation_equals_the_full_batch_on_the_device(device):
    sizes = (1, 7, 2, 9, 4)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(n, 16, generator=g), torch.randn(n, 1, generator=g)) for n in sizes]
    torch.manual_seed(0)
    net = nn.Linear(16, 1)
    reference = copy.deepcopy(net).to(device)
    accelerator = Accelerator(cpu=device == "cpu")
    model, opt = accelerator.prepare(net, torch.optim.SGD(net.parameters(), lr=0.3))
    ow = OptimWrapper(opt, accelerator, accumulative_counts=3)
    ow.initialize_count_status(model, 0, len(sizes))
    for x, y in data:
        loss = F.mse_loss(model(x.to(device)), y.to(device))
        ow.update_params(loss, num_items=torch.tensor(len(x), device=device))
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.3)
    for window in (data[:3], data[3:]):
        x, y = (torch.cat(t).to(device) for t in zip(*window))
        F.mse_loss(reference(x), y).backward()
        ref_opt.step()
        ref_opt.zero_grad()
    assert_same_weights(net, reference, atol=1e-6)


# -- the LM recipe, bf16, on the GPU ------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_lm_recipe_trains_in_bf16_on_the_gpu(tmp_path):
    args = ["--model", "tiny", "--seq-len", "64", "--batch-size", "16", "--max-iters", "60",
            "--val-interval", "60", "--log-interval", "20", "--corpus-bytes", "60000",
            "--mixed-precision", "bf16", "--work-dir", str(tmp_path / "lm")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "train_lm.py"), *args],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in run_file(tmp_path / "lm", "scalars.jsonl").open()]
    losses = [r["loss"] for r in rows if r["mode"] == "train"]
    assert losses[-1] < losses[0] - 0.5, losses  # from ln(256) = 5.5 at the start
    ppl = [r["val/perplexity"] for r in rows if r["mode"] == "val"]
    assert math.isfinite(ppl[-1]) and ppl[-1] < 256

"""Correctness of the speed features (not their speed: benchmarks are in bench/).

Prefetching, compilation, fused/foreach optimizer selection, the OptimWrapper's direct
backward/step, skipping Accelerate's CPU-to-CPU batch placement, and ThroughputHook.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate.utils import DistributedType
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from engine import BaseModel, LoggerHook, OptimWrapper, Runner
from engine.hooks.throughput_hook import ThroughputHook, batch_size
from engine.model.compilation import compile_model
from engine.optim.builder import build_optim_wrapper, build_optimizer, fast_implementation
from engine.runner.prefetch import lookahead, move_to_device, prefetch_to_device
from run_files import run_file

ROOT = Path(__file__).resolve().parents[1]


# -- models and data --------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return x + torch.tanh(self.fc(x))


class TinyNet(BaseModel):
    """Two repeated blocks (for regional compilation) and a classifier."""

    tokens_per_sample = 3

    def __init__(self, width: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(width) for _ in range(2)])
        self.head = nn.Linear(width, classes)

    def forward(self, x, y, mode="tensor"):
        for block in self.blocks:
            x = block(x)
        logits = self.head(x)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, y)}
        return logits


def classification_data(n: int = 48, width: int = 8) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, width, generator=g), torch.randint(0, 3, (n,), generator=g))


class LossRecorder(LoggerHook):
    """A LoggerHook (so ThroughputHook reports through it) that also keeps every loss."""

    def __init__(self, interval: int = 4) -> None:
        super().__init__(interval=interval, progress_bar=False)
        self.losses: list[torch.Tensor] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(outputs["loss"])
        super().after_train_iter(runner, batch_idx, data_batch, outputs)


def train(tmp_path: Path, *, hooks=(), **runner_kwargs) -> tuple[Runner, list[float]]:
    torch.manual_seed(0)
    recorder = LossRecorder()
    runner = Runner(
        TinyNet(),
        tmp_path,
        train_dataloader=dict(dataset=classification_data(), batch_size=8, shuffle=True),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        randomness=dict(seed=0),
        default_hooks=dict(logger=recorder, checkpoint=None),
        custom_hooks=list(hooks),
        **runner_kwargs,
    )
    runner.train()
    return runner, torch.stack(recorder.losses).tolist()


# -- prefetching ------------------------------------------------------------------------
def test_lookahead_yields_every_batch_once_in_order_loading_one_ahead():
    events = []

    def load(b):
        events.append(("load", b))
        return b

    def ready(b):
        events.append(("ready", b))
        return b

    out = []
    for b in lookahead(iter(range(5)), load, ready):
        events.append(("step", b))
        out.append(b)
    assert out == [0, 1, 2, 3, 4]
    assert [e for e in events if e[0] == "load"] == [("load", i) for i in range(5)]
    # the next batch is loaded before the current one's step runs
    for i in range(4):
        assert events.index(("load", i + 1)) < events.index(("step", i))
    assert list(lookahead([], load, ready)) == []
    assert list(lookahead([7], load, ready)) == [7]


def test_prefetch_is_a_passthrough_off_cuda():
    loader = DataLoader(classification_data(), batch_size=8)
    assert prefetch_to_device(loader, None) is loader
    assert prefetch_to_device(loader, torch.device("cpu")) is loader
    assert prefetch_to_device(loader, "meta") is loader


def test_move_to_device_keeps_containers_and_non_tensors():
    Pair = namedtuple("Pair", "a b")
    batch = {"x": torch.ones(2), "meta": ["id0", "id1"], "pair": Pair(torch.zeros(1), 3)}
    moved = move_to_device(batch, torch.device("meta"))
    assert moved["x"].device.type == "meta" and moved["meta"] == ["id0", "id1"]
    assert isinstance(moved["pair"], Pair) and moved["pair"].a.device.type == "meta"
    assert moved["pair"].b == 3


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_prefetch_yields_every_batch_once_in_order_on_the_device():
    batches = [{"x": torch.full((4, 3), float(i)), "i": i} for i in range(20)]
    out = list(prefetch_to_device(batches, torch.device("cuda")))
    assert [b["i"] for b in out] == list(range(20))
    for i, b in enumerate(out):
        assert b["x"].is_cuda and torch.equal(b["x"].cpu(), torch.full((4, 3), float(i)))


def test_runner_on_cpu_skips_accelerates_batch_placement_and_prefetch(tmp_path):
    runner = Runner(
        TinyNet(),
        tmp_path,
        train_dataloader=dict(dataset=classification_data(), batch_size=8),
        val_dataloader=dict(dataset=classification_data(), batch_size=8),
        default_hooks=dict(checkpoint=None),
    )
    assert runner.prefetch_device is None
    assert runner.train_dataloader.device is None and runner.val_dataloader.device is None
    assert not runner.train_dataloader.pin_memory  # pinning is for CUDA only


# -- compilation ------------------------------------------------------------------------
def test_compile_options_are_checked_and_keys_unchanged():
    net = TinyNet()
    keys = list(net.state_dict())
    with pytest.raises(ValueError, match="unknown keys"):
        compile_model(net, dict(modee="max-autotune"))
    with pytest.raises(ValueError, match="found no blocks"):
        compile_model(nn.Sequential(nn.Linear(2, 2)), dict(regional=True))
    with pytest.raises(TypeError, match="bool or a dict"):
        compile_model(net, "yes")
    assert compile_model(net, False) is net and net._compiled_call_impl is None
    compile_model(net, dict(regional=True, backend="eager"))
    assert all(b._compiled_call_impl is not None for b in net.blocks)
    assert net._compiled_call_impl is None and net.head._compiled_call_impl is None
    compile_model(net, dict(regional="Block", backend="eager"))
    assert list(net.state_dict()) == keys


def test_regional_compile_captures_torchs_own_block_classes_and_copies_stay_eager():
    import copy

    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    layers = [nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True) for _ in range(2)]
    net = nn.Sequential(nn.Linear(8, 8), nn.Sequential(*layers))
    reference = copy.deepcopy(net)
    compile_model(net, dict(regional=True, backend="eager"))
    assert net[0]._compiled_call_impl is None  # not a repeated block
    counters.clear()
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(net(x), reference(x))
    assert counters["stats"]["unique_graphs"] >= 1  # nn.Module.compile() would trace nothing
    assert all(block._compiled_call_impl is None for block in copy.deepcopy(net)[1])


def test_compiled_and_eager_training_give_the_same_losses(tmp_path):
    # torch.compile with inductor on the CPU (C++ codegen with gcc): ~10-30 s here.
    from torch._dynamo.utils import counters

    _, eager = train(tmp_path / "eager")
    counters.clear()
    _, compiled = train(tmp_path / "whole", compile=True)
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo did capture the forward
    counters.clear()
    _, regional = train(tmp_path / "regional", compile=dict(regional=True))
    assert counters["stats"]["unique_graphs"] >= 1
    assert len(eager) == 12
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.tensor(regional), torch.tensor(eager), rtol=1e-4, atol=1e-5)


# -- fused / foreach optimizers -----------------------------------------------------------
def test_optimizer_dicts_get_the_fused_kernel_on_cpu():
    net = TinyNet()
    for kind in ("SGD", "Adam", "AdamW"):
        opt = build_optimizer(net.parameters(), dict(type=kind, lr=0.1))
        assert opt.defaults["fused"] is True, kind
    rms = build_optimizer(net.parameters(), dict(type="RMSprop", lr=0.1))
    assert rms.defaults["foreach"] is False  # what torch picks on the CPU, stated up front


def test_a_named_implementation_or_a_built_optimizer_is_left_alone():
    net = TinyNet()
    sgd = build_optimizer(net.parameters(), dict(type="SGD", lr=0.1, foreach=None))
    assert not sgd.defaults["fused"] and sgd.defaults["foreach"] is None
    built = torch.optim.SGD(net.parameters(), lr=0.1)
    assert build_optimizer(net.parameters(), built) is built
    assert not build_optim_wrapper(net, built).optimizer.defaults["fused"]


def test_fused_selection_rules():
    cpu = [nn.Parameter(torch.zeros(2))]
    assert fast_implementation(torch.optim.AdamW, cpu) == {"fused": True}
    assert fast_implementation(torch.optim.AdamW, [{"params": cpu, "lr": 0.1}]) == {"fused": True}
    assert fast_implementation(torch.optim.Adagrad, cpu) == {"foreach": False}
    assert fast_implementation(torch.optim.LBFGS, cpu) == {}
    assert fast_implementation(torch.optim.SGD, [nn.Parameter(torch.zeros(2, device="meta"))]) == {}
    assert fast_implementation(torch.optim.SGD, []) == {}
    # param groups given as generators are still all handed to the optimizer
    net = TinyNet()
    groups = [{"params": net.blocks.parameters()}, {"params": net.head.parameters(), "lr": 0.01}]
    opt = build_optimizer(groups, dict(type="SGD", lr=0.1))
    assert opt.defaults["fused"] and [len(g["params"]) for g in opt.param_groups] == [4, 2]


def test_sparse_embeddings_keep_torchs_default_implementation():
    class Sparse(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4, sparse=True)

    ow = build_optim_wrapper(Sparse(), dict(optimizer=dict(type="SGD", lr=0.1)))
    assert not ow.optimizer.defaults["fused"]


def test_fused_sgd_matches_plain_pytorch(tmp_path):
    runner, _ = train(tmp_path)
    assert runner.optim_wrapper._inner_optimizer.defaults["fused"] is True
    torch.manual_seed(0)
    reference = TinyNet()
    opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    loader = runner.train_dataloader
    for epoch in range(2):
        loader.set_epoch(epoch)
        for x, y in loader:
            loss = reference(x, y, mode="loss")["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    for a, b in zip(runner._raw_model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


# -- the OptimWrapper's direct path and Accelerate's -------------------------------------
class FakeAccelerator:
    """What OptimWrapper reads from an Accelerator, recording calls to backward.

    A fake only for routing: XLA, DeepSpeed and Megatron-LM cannot run on this project's
    CPU machines. Every precision path with real Accelerate objects (fp16's loss scaler
    included) is tested against plain PyTorch in tests/test_optim_precision_paths.py."""

    def __init__(self, scaler=None, distributed_type=DistributedType.NO) -> None:
        from accelerate.state import GradientState

        self.scaler = scaler
        self.distributed_type = distributed_type
        self.num_processes = 1
        self.gradient_accumulation_steps = 1
        self.gradient_state = GradientState()
        self.native_amp = False
        self.backward_calls = 0

    def backward(self, loss, **kwargs):
        self.backward_calls += 1
        loss.backward(**kwargs)


class PreparedOptimizer:
    """An AcceleratedOptimizer stand-in: counts steps taken through it."""

    def __init__(self, optimizer) -> None:
        self.optimizer = optimizer
        self.param_groups = optimizer.param_groups
        self.steps = 0

    def step(self, **kwargs):
        self.steps += 1
        self.optimizer.step(**kwargs)

    def zero_grad(self, **kwargs):
        self.optimizer.zero_grad(**kwargs)


@pytest.mark.parametrize(
    "scaler, kind, through_accelerate",
    [
        (None, DistributedType.NO, False),
        (None, DistributedType.MULTI_CPU, False),
        (object(), DistributedType.NO, True),  # fp16's loss scaler
        (None, DistributedType.XLA, True),
        (None, DistributedType.DEEPSPEED, True),
        (None, DistributedType.MEGATRON_LM, True),
    ],
)
def test_backward_and_step_go_through_accelerate_only_where_it_adds_something(
    scaler, kind, through_accelerate
):
    p = nn.Parameter(torch.tensor([1.0]))
    prepared = PreparedOptimizer(torch.optim.SGD([p], lr=0.5))
    acc = FakeAccelerator(scaler, kind)
    ow = OptimWrapper(prepared.optimizer)
    ow.attach(acc, prepared)
    with ow.optim_context(None):
        loss = (p * 3).sum()
    ow.update_params(loss)
    assert acc.backward_calls == int(through_accelerate)
    assert prepared.steps == int(through_accelerate)
    assert p.item() == pytest.approx(1.0 - 0.5 * 3)  # the same update either way


def test_bf16_autocast_still_applies_on_cpu(tmp_path):
    seen = []

    class Probe(TinyNet):
        def forward(self, x, y, mode="tensor"):
            seen.append(torch.is_autocast_enabled("cpu"))
            return super().forward(x, y, mode)

    runner = Runner(
        Probe(),
        tmp_path,
        train_dataloader=dict(dataset=classification_data(16), batch_size=8),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        mixed_precision="bf16",
        default_hooks=dict(logger=None, checkpoint=None),
    )
    runner.train()
    assert seen == [True, True]


# -- ThroughputHook ---------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_batch_size_reads_shapes():
    assert batch_size([torch.zeros(5, 3), torch.zeros(5)]) == 5
    assert batch_size({"inputs": [torch.zeros(3, 4, 4), torch.zeros(3, 6, 2)]}) == 2
    assert batch_size({"meta": ["a"], "ids": torch.zeros(7, 2)}) == 7
    assert batch_size(["no tensors"]) == 0


def test_throughput_rates_on_a_fake_clock(tmp_path):
    clock = FakeClock()
    hook = ThroughputHook(flops_per_token=100.0, peak_flops=256.0, clock=clock)
    runner = Runner(
        TinyNet(),
        tmp_path,
        train_dataloader=dict(dataset=classification_data(), batch_size=8),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(checkpoint=None),
    )
    hook.before_train(runner)
    batch = [torch.zeros(8, 8), torch.zeros(8, dtype=torch.long)]
    for i in range(4):
        clock.now += 0.5
        runner.state.iter = i + 1
        hook.after_train_iter(runner, i, batch, {})
    rates = hook.report()
    # 32 samples and 32 * 3 tokens in 2 s; 100 FLOPs per token against a 256 FLOP/s peak
    assert rates == pytest.approx({"samples_per_s": 16.0, "tokens_per_s": 48.0, "mfu": 4800 / 256})
    assert hook.report() == {}  # a new, empty window
    # tokens counted on the device stay tensors until the report
    hook._count_tokens = lambda b: torch.tensor(10)
    hook.after_train_iter(runner, 0, batch, {})
    assert set(hook.pending()) == {"tokens"} and torch.is_tensor(hook._tokens)
    clock.now += 1.0
    assert hook.report(hook.pending_values())["tokens_per_s"] == pytest.approx(10.0)


def test_throughput_joins_the_logger_line_and_scalars(tmp_path):
    # auto FLOPs: 6 x parameters per token (TinyNet says 3 tokens per sample); no peak on CPU
    runner, _ = train(tmp_path, hooks=[ThroughputHook(peak_flops=1e9)])
    records = [json.loads(x) for x in run_file(tmp_path, "scalars.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["mode"] == "train"]
    assert len(train_records) == 2  # 6 iterations per epoch, interval 4
    params = sum(p.numel() for p in runner._raw_model.parameters())
    for r in train_records:
        assert r["samples_per_s"] > 0
        assert r["tokens_per_s"] == pytest.approx(3 * r["samples_per_s"])
        assert r["mfu"] == pytest.approx(6 * params * r["tokens_per_s"] / 1e9)
    assert "samples_per_s" in run_file(tmp_path, "run.log").read_text()


def test_throughput_reports_itself_without_a_logger(tmp_path, engine_log):
    hook = ThroughputHook(interval=3)
    runner = Runner(
        TinyNet(),
        tmp_path,
        train_dataloader=dict(dataset=classification_data(), batch_size=8),
        train_cfg=dict(by_epoch=False, max_iters=6),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=None, checkpoint=None),
        custom_hooks=[hook],
    )
    runner.train()
    assert set(hook.last) == {"samples_per_s", "tokens_per_s"}  # no peak on the CPU: no mfu
    # its own line at iterations 3 and 6, the last one saying what `last` holds
    lines = [m for m in engine_log if m.startswith("samples_per_s: ")]
    assert len(lines) == 2, engine_log
    fields = dict(part.split(": ") for part in lines[-1].split("  "))
    assert fields == {k: (f"{v:.4f}" if v < 10 else f"{v:.1f}") for k, v in hook.last.items()}
    assert hook.last["tokens_per_s"] == pytest.approx(3 * hook.last["samples_per_s"])


# -- the GPU benchmark's CPU smoke mode ---------------------------------------------------
def test_gpu_benchmark_smoke_mode_runs_on_cpu(tmp_path):
    # Every variant of bench/gpu.py at tiny sizes (compile included): ~1-5 min here.
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gpu.py"),
            "--smoke",
            "--out",
            str(tmp_path / "r.md"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = (tmp_path / "r.md").read_text()
    raw = text.split("```json\n")[1].split("```")[0]
    rows = {(r["workload"], r["variant"]): r for r in map(json.loads, raw.splitlines())}
    variants = ("torch", "accelerate", "engine", "engine_compile")
    expected = {("gpt", v) for v in variants} | {
        ("mlp", v) for v in (*variants, "engine_noprefetch")
    }
    assert set(rows) == expected
    for (workload, variant), r in rows.items():
        # every variant was timed in both interleaved rounds and has a row in the table
        assert r["error"] is None and r["rounds"] == 2 and r["ms_min"] <= r["ms"] <= r["ms_max"]
        assert f"| {variant} | {r['ms']:.3f} |" in text
        if workload == "gpt":  # tokens/s: samples/s times the smoke sequence length
            assert r["tokens_s"] == pytest.approx(32 * r["samples_s"])
    assert rows[("gpt", "engine")]["optimizer"] == "fused"  # engine's default AdamW kernel
    assert "| LM bf16 eager: engine tokens/s vs a hand-written Accelerate loop | >= 0.99x |" in text
    assert text.count("| n/a (smoke) |") == 5  # a CPU run claims no bar met or missed

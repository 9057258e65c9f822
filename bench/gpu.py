"""GPU benchmark: engine against raw PyTorch and a hand-written Accelerate loop.

Two workloads, each run as four or five variants:

  gpt   recipes/train_lm.py's GPT (pre-norm blocks, causal attention through SDPA, tied
        embeddings) at 8 layers, width 768, 12 heads, sequence 512, batch 16, vocabulary
        8192; bf16 autocast, AdamW: compute-bound.
  mlp   784-1024-1024-10 MLP, batch 256, bf16 autocast, AdamW, an in-memory TensorDataset:
        overhead-bound (data loading and kernel launches, not FLOPs).

  torch           the loop a user writes: ``x.cuda(non_blocking=True)``, ``torch.autocast``,
                  ``loss.backward()``, ``opt.step()``, ``opt.zero_grad()``
  accelerate      the idiomatic Accelerate loop: ``accelerator.prepare(model, opt, dl)``,
                  ``accelerator.backward(loss)``, ``opt.step()``, ``opt.zero_grad()``
  engine          ``engine.Runner`` with its defaults (prefetching, pinned memory, fused
                  AdamW, timer/logger/checkpoint hooks) plus a ThroughputHook
  engine_compile  the same with ``compile=True``
  engine_noprefetch  (mlp only) engine with ``prefetch=False``: how much of engine's gain
                  over torch comes from prefetching (the rest: fused AdamW, the loop)

All variants share the model code, the data, the batch size and the optimizer settings.
Each variant lives in its own process (compiled once, warmed up); rounds then take one
timed chunk of iterations from each variant in turn, so drift on the machine hits all of
them. Per variant: median ms/iteration over rounds (min, max), tokens or samples per
second, MFU (model FLOPs per second over the bf16 matmul peak measured on this card),
and peak memory. The engine variants then run two log windows with
``torch.cuda.set_sync_debug_mode('error')`` on every iteration that does not log: any
host-device sync between log intervals fails the check and names the call.

Run on a GPU (about 4-6 minutes on an H100; ``--budget-s`` caps the timed rounds):
    python bench/gpu.py --out bench/gpu_results.md
Check on a CPU that it runs at all (tiny sizes, a minute or two):
    python bench/gpu.py --smoke
Then append the printed markdown to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

VARIANTS = ("torch", "accelerate", "engine", "engine_compile", "engine_noprefetch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LR, BETAS, WEIGHT_DECAY = 3e-4, (0.9, 0.95), 0.1


# -- configuration ---------------------------------------------------------------------
@dataclass
class Workload:
    name: str
    batch: int
    samples: int  # dataset size
    warmup: int  # iterations before timing (compilation happens here)
    chunk: int  # iterations per timed chunk = the log interval
    layers: int = 0
    width: int = 0
    heads: int = 0
    seq: int = 0
    vocab: int = 0
    in_dim: int = 0
    hidden: int = 0
    classes: int = 0

    def __post_init__(self) -> None:
        # Chunks must end where the logger's windows end (iteration % chunk == 0): the
        # sync check leaves exactly those iterations unguarded.
        assert self.warmup % self.chunk == 0, "warmup must be a multiple of chunk"


def workloads(smoke: bool) -> list[Workload]:
    if smoke:
        return [
            Workload("gpt", batch=4, samples=32, warmup=5, chunk=5, layers=2, width=64,
                     heads=4, seq=32, vocab=128),
            Workload("mlp", batch=16, samples=256, warmup=5, chunk=5, in_dim=32, hidden=64,
                     classes=10),
        ]  # fmt: skip
    return [
        Workload("gpt", batch=16, samples=1024, warmup=50, chunk=50, layers=8, width=768,
                 heads=12, seq=512, vocab=8192),
        Workload("mlp", batch=256, samples=60_000, warmup=200, chunk=200, in_dim=784,
                 hidden=1024, classes=10),
    ]  # fmt: skip


# -- models and data (shared by every variant) -------------------------------------------
def build_core(w: Workload):
    """The model every variant trains. gpt: recipes/train_lm.py's GPT (a BaseModel; called
    as ``core(inputs, labels, mode='loss')['loss']`` by the hand-written loops); mlp: a
    plain nn.Module, ``core(x, y) -> loss``."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    if w.name == "gpt":
        sys.path.insert(0, os.path.join(ROOT, "recipes"))
        from train_lm import GPT, ModelConfig

        return GPT(ModelConfig(layers=w.layers, width=w.width, heads=w.heads), w.seq, w.vocab)

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(w.in_dim, w.hidden), nn.ReLU(),
                nn.Linear(w.hidden, w.hidden), nn.ReLU(),
                nn.Linear(w.hidden, w.classes),
            )  # fmt: skip

        def forward(self, x, y):
            return F.cross_entropy(self.net(x).float(), y)

    return MLP()


def batch_loss(core, batch, device=None):
    """The hand-written loops' forward: a dict batch (gpt) or an ``(x, y)`` pair (mlp)."""
    if isinstance(batch, dict):
        if device is not None:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        return core(**batch, mode="loss")["loss"]
    x, y = batch
    if device is not None:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return core(x, y)


def build_engine_model(w: Workload):
    if w.name == "gpt":
        return build_core(w)  # a BaseModel already: num_tokens() feeds the ThroughputHook
    from engine import BaseModel

    class EngineModel(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.core = build_core(w)

        def forward(self, x, y, mode="tensor"):
            loss = self.core(x, y)
            return {"loss": loss} if mode == "loss" else loss

    return EngineModel()


class TokenDataset:
    """Random token sequences as ``{'inputs', 'labels'}`` samples (labels: inputs shifted)."""

    def __init__(self, tokens) -> None:
        self.tokens = tokens

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict:
        return {"inputs": self.tokens[i, :-1], "labels": self.tokens[i, 1:]}


def dataset(w: Workload):
    import torch
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    if w.name == "gpt":
        return TokenDataset(torch.randint(0, w.vocab, (w.samples, w.seq + 1), generator=g))
    x = torch.randn(w.samples, w.in_dim, generator=g)
    return TensorDataset(x, torch.randint(0, w.classes, (w.samples,), generator=g))


def loader(w: Workload):
    from torch.utils.data import DataLoader

    return DataLoader(dataset(w), batch_size=w.batch, shuffle=True, drop_last=True)


def flops_per_sample(w: Workload, core) -> float:
    """Training FLOPs (forward + backward) of one sample: 6 per parameter per token for the
    matmuls (the token and position embeddings are lookups, not matmuls), plus causal
    attention's 12 * layers * width * sequence per token (PaLM's formula)."""
    if w.name == "gpt":
        dense = sum(
            p.numel() for n, p in core.named_parameters() if not n.startswith(("wte", "wpe"))
        )
        dense += w.vocab * w.width  # the output head: tied to wte, but a matmul all the same
        return (6 * dense + 12 * w.layers * w.width * w.seq) * w.seq
    return 6 * sum(p.numel() for p in core.parameters())


# -- the pacer: the driver's commands, checked after every iteration ---------------------
class Pacer:
    """Counts iterations; at warm-up's end and after each timed chunk it synchronises the
    device, reports, and waits for the driver's next command on stdin."""

    def __init__(self, w: Workload, device) -> None:
        self.w, self.device = w, device
        self.i = 0
        self.stop_at = w.warmup
        self.t0 = 0.0
        self.phase = "warmup"
        self.guard = False  # sync check: 'error' mode on iterations that do not log
        self.result: dict = {}

    def _sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _set_guard(self, on: bool) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("error" if on else "default")

    def tick(self, loss=None) -> bool:
        """Called after every iteration (after the logger); False: stop training."""
        self.i += 1
        if self.guard:
            # The next iteration logs when it ends a chunk (the log interval): no guard there.
            self._set_guard((self.i + 1) % self.w.chunk != 0 and self.i < self.stop_at)
        if self.i < self.stop_at:
            return True
        self._set_guard(False)
        if loss is not None:
            loss = float(loss)  # what a hand loop logs; a sync, at the interval only
        self._sync()
        elapsed = time.perf_counter() - self.t0
        if self.phase == "timing":
            _send({"ms": elapsed / self.w.chunk * 1e3})
        elif self.phase == "check":
            ok = "ok: no host sync between log intervals"
            _send({"sync_check": ok if self.device.type == "cuda" else "not checked (no CUDA)"})
        elif self.phase == "warmup":
            import torch

            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            _send({"ready": True})
        command = sys.stdin.readline().split()
        if not command or command[0] == "stop":
            if self.device.type == "cuda":
                import torch

                self.result["peak_mem_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
            _send({"done": True, **self.result})
            return False
        if command[0] == "run":
            self.phase, self.stop_at = "timing", self.i + self.w.chunk
        elif command[0] == "check":
            self.phase, self.stop_at = "check", self.i + 2 * self.w.chunk
            self.guard = self.device.type == "cuda"
            self._set_guard(self.guard)  # the next iteration does not log
        self.t0 = time.perf_counter()
        return True


def _send(message: dict) -> None:
    print(json.dumps(message), flush=True)


# -- the variants ------------------------------------------------------------------------
def run_torch(w: Workload, pacer: Pacer, device) -> None:
    import torch

    core = build_core(w).to(device)
    opt = torch.optim.AdamW(core.parameters(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    dl = loader(w)
    core.train()
    while True:
        for batch in dl:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = batch_loss(core, batch, device)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if not pacer.tick(loss.detach()):
                return


def run_accelerate(w: Workload, pacer: Pacer, device) -> None:
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="bf16", cpu=device.type == "cpu")
    core = build_core(w)
    opt = torch.optim.AdamW(core.parameters(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    core, opt, dl = accelerator.prepare(core, opt, loader(w))
    core.train()
    while True:
        for batch in dl:
            loss = batch_loss(core, batch)
            accelerator.backward(loss)
            opt.step()
            opt.zero_grad()
            if not pacer.tick(loss.detach()):
                return


def run_engine(
    w: Workload, pacer: Pacer, device, compile: bool, peak_flops: float, prefetch: bool = True
) -> None:
    from engine import Hook, LoggerHook, Runner
    from engine.hooks.throughput_hook import ThroughputHook

    class PacerHook(Hook):
        priority = "LOWEST"  # after the logger, whose window ends where a chunk ends

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            if not pacer.tick():
                runner.state.should_stop = True

    model = build_engine_model(w)
    core = model if w.name == "gpt" else model.core
    throughput = ThroughputHook(flops_per_sample=flops_per_sample(w, core), peak_flops=peak_flops)
    with tempfile.TemporaryDirectory() as work_dir:
        runner = Runner(
            model,
            work_dir,
            train_dataloader=dict(dataset=dataset(w), batch_size=w.batch, shuffle=True,
                                  drop_last=True),
            train_cfg=dict(by_epoch=False, max_iters=10**9),  # the pacer stops it
            optim_wrapper=dict(
                optimizer=dict(type="AdamW", lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
            ),
            mixed_precision="bf16",
            default_hooks=dict(
                logger=LoggerHook(interval=w.chunk, progress_bar=False),
                # registered, but no save during the benchmark (I/O is not the loop)
                checkpoint=dict(type="CheckpointHook", interval=-1, save_last=False),
            ),
            custom_hooks=[throughput, PacerHook()],
            compile=compile,
            prefetch=prefetch,
        )  # fmt: skip
        optimizer = runner.optim_wrapper._inner_optimizer
        pacer.result["optimizer"] = "fused" if optimizer.defaults.get("fused") else "foreach"
        pacer.result["prefetch"] = runner.prefetch_device is not None
        try:
            runner.train()
        except RuntimeError as err:
            if not pacer.guard:
                raise
            import traceback

            import torch

            pacer._set_guard(False)
            pacer.result["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            frames = traceback.extract_tb(err.__traceback__)
            where = next(
                (f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                 for f in reversed(frames) if "/torch/" not in f.filename),
                "?",
            )  # fmt: skip
            _send({"sync_check": f"FAILED at iteration {pacer.i + 1}: {where}: {err}"[:300]})
            sys.stdin.readline()
            _send({"done": True, **pacer.result})


def serve(workload: str, variant: str, smoke: bool, peak_flops: float) -> None:
    import torch

    w = next(x for x in workloads(smoke) if x.name == workload)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    pacer = Pacer(w, device)
    if variant == "torch":
        run_torch(w, pacer, device)
    elif variant == "accelerate":
        run_accelerate(w, pacer, device)
    else:
        prefetch = variant != "engine_noprefetch"
        run_engine(w, pacer, device, variant == "engine_compile", peak_flops, prefetch)


# -- the driver --------------------------------------------------------------------------
class Variant:
    """One variant's process, driven by JSON lines (it may print log lines too)."""

    def __init__(self, workload: str, name: str, smoke: bool, peak_flops: float) -> None:
        env = dict(os.environ, ACCELERATE_DISABLE_RICH="1")
        env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
        command = [sys.executable, __file__, "--serve", workload, name]
        command += ["--peak-flops", str(peak_flops)] + (["--smoke"] if smoke else [])
        self.name, self.error, self.tail = name, None, []
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env,
        )  # fmt: skip

    def receive(self) -> dict | None:
        if self.error:
            return None
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
            self.tail = (self.tail + [line.rstrip()])[-15:]
        self.error = f"exited with code {self.proc.wait()}: " + " | ".join(self.tail[-3:])
        return None

    def send(self, command: str) -> dict | None:
        if self.error:
            return None
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.error = "exited: " + " | ".join(self.tail[-3:])
            return None
        return self.receive()

    def close(self) -> dict:
        done = self.send("stop") or {}
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        return done


def measure_peak_flops(smoke: bool) -> tuple[float, str]:
    """Dense bf16 matmul FLOP/s on this device (best of a few runs): the MFU denominator."""
    import torch

    if not torch.cuda.is_available():
        n, dtype, device = (256 if smoke else 1024), torch.float32, "cpu"
    else:
        n, dtype, device = 8192, torch.bfloat16, "cuda"
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = math.inf
    for _ in range(5):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * n**3 / best, f"{n}x{n}x{n} {str(dtype).replace('torch.', '')} matmul"


def bench_workload(w: Workload, args, peak_flops: float, deadline: float) -> list[dict]:
    names = [v for v in args.variants if v != "engine_noprefetch" or w.name == "mlp"]
    variants = [Variant(w.name, v, args.smoke, peak_flops) for v in names]
    for v in variants:  # warm-ups (and compilations) run side by side
        if v.receive() is None:
            print(f"{w.name}/{v.name} failed to start: {v.error}", file=sys.stderr)
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(args.rounds):
        if time.time() > deadline and r >= 2:
            print(f"{w.name}: time budget reached after {r} rounds", file=sys.stderr)
            break
        shift = r % len(variants)
        for v in variants[shift:] + variants[:shift]:
            out = v.send("run")
            if out is not None and "ms" in out:
                times[v.name].append(out["ms"])
        print(
            f"{w.name} round {r + 1}: "
            + "  ".join(f"{n} {t[-1]:.2f} ms" for n, t in times.items() if t),
            file=sys.stderr, flush=True,
        )  # fmt: skip
    rows = []
    core_flops = flops_per_sample(w, build_core(w))
    for v in variants:
        check = "-"
        if v.name.startswith("engine"):
            reply = v.send("check")
            check = (reply or {}).get("sync_check", v.error or "no reply")
        done = v.close()
        ms = times[v.name]
        row = dict(workload=w.name, variant=v.name, error=v.error, sync_check=check, **done)
        if ms:
            med = statistics.median(ms)
            samples_s = w.batch / (med / 1e3)
            row.update(ms=med, ms_min=min(ms), ms_max=max(ms), rounds=len(ms), samples_s=samples_s)
            row["tokens_s"] = samples_s * w.seq if w.name == "gpt" else None
            row["mfu"] = core_flops * samples_s / peak_flops
        rows.append(row)
    return rows


def markdown(rows: list[dict], header: str) -> str:
    out = [header, ""]
    for workload in dict.fromkeys(r["workload"] for r in rows):
        group = [r for r in rows if r["workload"] == workload]
        base = {r["variant"]: r.get("ms") for r in group}
        torch_ms, accelerate_ms = base.get("torch"), base.get("accelerate")
        out += [
            f"**{workload}**",
            "",
            "| variant | ms/iter (median) | min | max | speed vs torch | vs accelerate "
            "| tokens/s | samples/s | MFU | peak mem GiB | host syncs between log intervals |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in group:
            if "ms" not in r:
                out.append(f"| {r['variant']} | failed: {r.get('error')} |")
                continue

            tokens = f"{r['tokens_s']:,.0f}" if r.get("tokens_s") else "-"
            mem = f"{r['peak_mem_gib']:.2f}" if r.get("peak_mem_gib") is not None else "-"
            out.append(
                f"| {r['variant']} | {r['ms']:.3f} | {r['ms_min']:.3f} | {r['ms_max']:.3f} "
                f"| {_speed(torch_ms, r['ms'])} | {_speed(accelerate_ms, r['ms'])} | {tokens} "
                f"| {r['samples_s']:,.0f} "
                f"| {r['mfu']:.1%} | {mem} | {r['sync_check']} |"
            )
        out.append("")
    return "\n".join(out)


# The bars: (what, workload, variant, baseline, bar); 'mem' compares peak memory.
TARGETS = (
    ("LM bf16 eager: engine tokens/s vs a hand-written Accelerate loop", "gpt", "engine", "accelerate", 0.99),
    ("LM bf16 eager: engine tokens/s vs plain PyTorch", "gpt", "engine", "torch", 0.97),
    ("LM: engine compile=True tokens/s vs eager plain PyTorch", "gpt", "engine_compile", "torch", 1.3),
    ("MLP fed by a DataLoader: engine it/s vs plain PyTorch", "mlp", "engine", "torch", 1.5),
    ("LM peak memory: engine / plain PyTorch (at most)", "gpt", "engine", "torch", "mem"),
)  # fmt: skip


def targets(rows: list[dict], smoke: bool) -> str:
    """Each bar of the issue, the measured ratio, and whether it is met."""
    by = {(r["workload"], r["variant"]): r for r in rows}
    out = ["| target | bar | measured | met |", "| --- | ---: | ---: | --- |"]
    for what, workload, variant, base, bar in TARGETS:
        a, b = by.get((workload, variant), {}), by.get((workload, base), {})
        if bar == "mem":
            ok = a.get("peak_mem_gib") and b.get("peak_mem_gib")
            ratio = a["peak_mem_gib"] / b["peak_mem_gib"] if ok else None
            met = ratio is not None and ratio <= 1.05
            bar_text = "<= 1.05x"
        else:
            ratio = b["ms"] / a["ms"] if "ms" in a and "ms" in b else None
            met = ratio is not None and ratio >= bar
            bar_text = f">= {bar}x"
        measured = "-" if ratio is None else f"{ratio:.3f}x"
        verdict = "n/a (smoke)" if smoke else ("yes" if met else "NO")
        out.append(f"| {what} | {bar_text} | {measured} | {verdict} |")
    return "\n".join(out) + "\n"


def _speed(base_ms: float | None, ms: float) -> str:
    return f"{base_ms / ms:.2f}x" if base_ms else "-"


def environment(peak: float, peak_how: str, args) -> str:
    import accelerate
    import torch

    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (smoke run)"
    cuda = torch.version.cuda or "none"
    return (
        f"### bench/gpu.py on {card}, {datetime.date.today().isoformat()}"
        f"{' (--smoke: tiny sizes, not a measurement)' if args.smoke else ''}\n\n"
        f"torch {torch.__version__} (CUDA {cuda}), accelerate {accelerate.__version__}, "
        f"Python {sys.version.split()[0]}. MFU denominator: {peak / 1e12:.1f} TFLOP/s, "
        f"measured ({peak_how}, best of 5). bf16 autocast, AdamW; "
        f"ms/iter: median of {args.rounds} interleaved rounds (each a log interval of "
        "iterations, timed from a device sync to a device sync)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; runs on a CPU")
    parser.add_argument("--rounds", type=int, default=None, help="default 8 (smoke: 2)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="cap on the whole run")
    parser.add_argument("--workloads", default="gpt,mlp")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", help="also write the markdown here")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--peak-flops", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve, args.smoke, args.peak_flops)
        return
    args.rounds = args.rounds or (2 if args.smoke else 8)
    args.variants = args.variants.split(",")
    start = time.time()
    peak, peak_how = measure_peak_flops(args.smoke)
    chosen = [w for w in workloads(args.smoke) if w.name in args.workloads.split(",")]
    rows = []
    for k, w in enumerate(chosen):
        # the timed rounds of each workload share what is left of the budget
        deadline = start + (k + 1) * args.budget_s / len(chosen) - 60
        rows += bench_workload(w, args, peak, deadline)
    text = markdown(rows, environment(peak, peak_how, args))
    text += "\n" + targets(rows, args.smoke)
    text += f"\nWhole run: {time.time() - start:.0f} s. Raw rows:\n\n```json\n"
    text += "\n".join(json.dumps(r) for r in rows) + "\n```\n"
    text += "\nSettings: " + "; ".join(json.dumps(asdict(w)) for w in chosen) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

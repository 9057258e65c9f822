"""Per-iteration overhead of the training loop on the CPU: engine against hand-written loops.

The same tiny-MLP training (same model, SGD with momentum 0.9, batch 32, the same shuffled
data, the same number of iterations) runs as

  torch             plain PyTorch: ``loss = ce(model(x), y); opt.zero_grad(); loss.backward(); opt.step()``
  accelerate        the idiomatic hand-written Accelerate loop: ``accelerator.prepare(model, opt, dl)``,
                    ``accelerator.backward(loss)``, ``opt.step()``, ``opt.zero_grad()``
  runner            ``engine.Runner`` with its default hooks (timer, logger at interval 50
                    writing run.log/scalars.jsonl in a temporary work_dir, checkpoint);
                    the optimizer is given as ``dict(type='SGD', ...)``, so engine picks
                    torch's fused SGD kernel
  run_loop          ``engine.run_loop`` with a built ``torch.optim.SGD`` (no logger hook)
  runner_torch_sgd  ``runner`` with ``foreach=None`` in the optimizer dict: torch's default
                    SGD implementation, exactly as in ``torch``/``accelerate``

The CheckpointHook stays registered (its per-iteration check runs) but is configured not to
write during the timed runs (``interval=-1, save_last=False``): a save is I/O that the hand
loops do not do, and its cost does not depend on the loop.

Each variant lives in its own process for the whole benchmark. The processes take turns:
a round asks each (in a rotating order) for one timed run of ``--epochs`` epochs, so the
load that other jobs put on a shared machine falls on all variants alike. Each run is timed
twice: wall clock, and this process's CPU time (which excludes the time spent waiting for
a core). The tables give, per variant, the median over rounds with the min and max, the
ratio of medians, and the median of the per-round ratios (runs next to each other in time).

Run:  python bench/overhead.py [--rounds 30] [--epochs 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

VARIANTS = ("torch", "accelerate", "runner", "run_loop", "runner_torch_sgd")

IN_DIM, HIDDEN, CLASSES = 32, 64, 10
BATCH, BATCHES_PER_EPOCH = 32, 64
LR, MOMENTUM = 0.05, 0.9


def _data():
    import torch
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    n = BATCH * BATCHES_PER_EPOCH
    x = torch.randn(n, IN_DIM, generator=g)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    return TensorDataset(x, y)


def _mlp():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN_DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))


def _loader():
    from torch.utils.data import DataLoader

    return DataLoader(_data(), batch_size=BATCH, shuffle=True)


def _optimizer(params):
    import torch

    return torch.optim.SGD(params, lr=LR, momentum=MOMENTUM)


def _engine_model():
    import torch.nn.functional as F

    from engine import BaseModel

    class MLP(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp()

        def forward(self, x, y, mode="tensor"):
            logits = self.net(x)
            if mode == "loss":
                return dict(loss=F.cross_entropy(logits, y))
            return logits

    return MLP()


# -- one timed run of each variant: set-up outside the clock, the loop inside ---------
def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) since `start`. On a machine shared with
    other jobs, wall time includes the time this process waited for a core; CPU time does
    not, so it is the steadier measure of the work the loop does."""
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def run_torch(epochs: int) -> tuple[float, float]:
    import torch.nn.functional as F

    model, dl = _mlp(), _loader()
    opt = _optimizer(model.parameters())
    model.train()
    start = _clock()
    for _ in range(epochs):
        for x, y in dl:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return _since(start)


def run_accelerate(epochs: int) -> tuple[float, float]:
    import torch.nn.functional as F
    from accelerate import Accelerator

    accelerator = Accelerator()
    model = _mlp()
    model, opt, dl = accelerator.prepare(model, _optimizer(model.parameters()), _loader())
    model.train()
    start = _clock()
    for _ in range(epochs):
        for x, y in dl:
            loss = F.cross_entropy(model(x), y)
            accelerator.backward(loss)
            opt.step()
            opt.zero_grad()
    return _since(start)


def run_runner(epochs: int, sgd_options: dict | None = None) -> tuple[float, float]:
    import engine.runner.runner
    from engine import Runner

    # The end-of-run curves.png (matplotlib, ~0.2 s once per run) is not loop overhead.
    engine.runner.runner.plotting_available = lambda: False

    optimizer = dict(type="SGD", lr=LR, momentum=MOMENTUM, **(sgd_options or {}))
    with tempfile.TemporaryDirectory() as work_dir:
        runner = Runner(
            model=_engine_model(),
            work_dir=work_dir,
            train_dataloader=_loader(),
            train_cfg=dict(by_epoch=True, max_epochs=epochs),
            optim_wrapper=dict(optimizer=optimizer),
            default_hooks=dict(
                logger=dict(type="LoggerHook", interval=50, progress_bar=False),
                # registered and called every iteration, but not writing (see the docstring)
                checkpoint=dict(type="CheckpointHook", interval=-1, save_last=False),
            ),
        )
        start = _clock()
        runner.train()
        elapsed = _since(start)
    assert runner.state.iter == epochs * BATCHES_PER_EPOCH
    return elapsed


def run_run_loop(epochs: int) -> tuple[float, float]:
    from engine import run_loop

    model = _engine_model()
    opt = _optimizer(model.parameters())
    dl = _loader()
    start = _clock()
    state = run_loop(model, dl, opt, max_epochs=epochs)
    elapsed = _since(start)
    assert state.iter == epochs * BATCHES_PER_EPOCH
    return elapsed


def run_runner_torch_sgd(epochs: int) -> tuple[float, float]:
    """`runner` with the SGD implementation torch picks by default (foreach=None), not the
    fused one engine picks: how much of the difference is the loop, not the optimizer."""
    return run_runner(epochs, dict(foreach=None))


RUNS = {
    "torch": run_torch,
    "accelerate": run_accelerate,
    "runner": run_runner,
    "run_loop": run_run_loop,
    "runner_torch_sgd": run_runner_torch_sgd,
}


def _reset_accelerate() -> None:
    """A fresh Accelerator per run, as in a fresh process (Accelerate keeps singletons)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def serve(variant: str) -> None:
    """A variant's process: warm up, then time one run of N epochs per ``run N`` line."""
    import torch

    torch.set_num_threads(1)  # the same for every variant; a tiny MLP gains nothing from more
    fn = RUNS[variant]
    fn(2)
    _reset_accelerate()
    print(_READY, flush=True)
    for line in sys.stdin:
        epochs = int(line.split()[1])
        wall, cpu = fn(epochs)
        _reset_accelerate()
        iters = epochs * BATCHES_PER_EPOCH
        print(json.dumps({"wall": wall / iters * 1e6, "cpu": cpu / iters * 1e6}), flush=True)


_READY = "ready"


class _Variant:
    """One variant's process, driven over stdin/stdout (it may print log lines too)."""

    def __init__(self, name: str) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_DISABLE_RICH="1")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._read(lambda line: line.strip() == _READY)

    def _read(self, done) -> str:
        for line in self.proc.stdout:
            if done(line):
                return line
        raise RuntimeError(f"variant {self.name} exited with code {self.proc.wait()}")

    def run(self, epochs: int) -> dict[str, float]:
        self.proc.stdin.write(f"run {epochs}\n")
        self.proc.stdin.flush()
        return json.loads(self._read(lambda line: line.startswith("{")))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _table(runs: dict[str, list[float]], clock: str) -> list[str]:
    med = {v: statistics.median(xs) for v, xs in runs.items()}

    def ratio(v: str, base: str) -> str:
        if base not in runs:
            return "-"
        paired = statistics.median(a / b for a, b in zip(runs[v], runs[base]))
        return f"{med[v] / med[base]:.2f} ({paired:.2f})"

    lines = [
        f"| variant | median µs/iter ({clock}) | min | max | / torch | / accelerate |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for v, xs in runs.items():
        lines.append(
            f"| {v} | {med[v]:.0f} | {min(xs):.0f} | {max(xs):.0f} "
            f"| {ratio(v, 'torch')} | {ratio(v, 'accelerate')} |"
        )
    return lines


def _machine() -> str:
    import platform

    import accelerate
    import torch

    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = f"{names[0]} x{len(names)}" if names else cpu
    return (
        f"{cpu}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"accelerate {accelerate.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--epochs", type=int, default=4, help=f"per run; {BATCHES_PER_EPOCH} iters each"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--serve", choices=list(RUNS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    names = args.variants.split(",")
    variants = [_Variant(name) for name in names]
    wall: dict[str, list[float]] = {v: [] for v in names}
    cpu: dict[str, list[float]] = {v: [] for v in names}
    try:
        for r in range(args.rounds):
            shift = r % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                out = variant.run(args.epochs)
                wall[variant.name].append(out["wall"])
                cpu[variant.name].append(out["cpu"])
            row = "  ".join(f"{v} {cpu[v][-1]:.0f}/{wall[v][-1]:.0f}" for v in names)
            print(f"round {r + 1}/{args.rounds} (µs/iter, cpu/wall): {row}", flush=True)
    finally:
        for variant in variants:
            variant.close()

    iters = args.epochs * BATCHES_PER_EPOCH
    print(
        f"\n{args.rounds} rounds x {iters} iterations per variant, one process per variant; "
        f"{_machine()}\nratio columns: ratio of medians (median of per-round ratios)\n"
    )
    print("\n".join(_table(cpu, "CPU time")))
    print()
    print("\n".join(_table(wall, "wall")))


if __name__ == "__main__":
    main()

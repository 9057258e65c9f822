"""What a checkpoint save costs the training loop, synchronous and with ``async_save=True``.

A model of about ``--mb`` MB of float32 parameters (``Linear(--width, --width)`` layers)
trains with AdamW under `engine.Runner`, saving a checkpoint (weights, AdamW's two moments:
about 3x ``--mb``) every ``--interval`` iterations with `engine.CheckpointHook`. Each round
runs it once with synchronous saves and once with ``async_save=True``, alternating. Right
before and after each synchronous save it writes and fsyncs a file the size of a checkpoint
in the same work_dir: the disk's sequential write speed, measured in the same run (a shared
disk's speed changes from minute to minute). Printed (markdown):

* the disk's speed (write + fsync, 16 MiB writes from one buffer);
* the synchronous save's MB/s (checkpoint bytes / time in ``CheckpointHook.save``), save by
  save against the disk measured around it, and its parts (weights file, optimizer file,
  manifest, publish, the NaN guard's check), goal >= 70% of the disk's speed;
* the stall per asynchronous save (time the loop is blocked in ``CheckpointHook.save``: the
  wait for the previous save, if still writing, the copy to CPU, what hooks do before a
  save) as a share of the synchronous save's time, goal <= 10%; and the background write.

Usage: ``python bench/async_save.py [--mb 300] [--rounds 2] [--saves 3] [--nan-policy stop]``
``[--dir work_dirs]`` (``--dir``: a folder on the disk to test).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from accelerate.state import AcceleratorState, GradientState
from torch import nn

import engine.checkpoint.checkpoint_files as files_module
import engine.checkpoint.save as save_module
from engine import BaseModel, CheckpointHook, Runner
from engine.hooks.nan_guard_hook import NanGuardHook

MB = 1e6
_parts: dict[str, list[float]] = defaultdict(list)  # time in each part of the last run's saves


class Stack(BaseModel):
    """`layers` Linear(width, width) layers with ReLU between: about 4 * width**2 * layers bytes."""

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *[m for _ in range(layers) for m in (nn.Linear(width, width), nn.ReLU())]
        )

    def forward(self, x, mode="tensor"):
        out = self.net(x)
        return {"loss": out.pow(2).mean()} if mode == "loss" else out


class TimedCheckpointHook(CheckpointHook):
    """CheckpointHook that records how long each save blocks the loop, and of that how long
    it waited for the previous (background) save."""

    def __init__(self, disk_dir: Path | None = None, nbytes: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.disk_dir, self.nbytes, self.disk, self.disk_after = disk_dir, nbytes, [], []
        self.blocked: list[float] = []
        self.waited: list[float] = []
        self.copied: list[float] = []
        self.written: list[float] = []
        self._in_save = False

    def save(self, runner, name: str) -> None:
        if self.disk_dir is not None and self.nbytes:  # the disk's speed, just before the save
            self.disk.append(disk_speed(self.disk_dir, self.nbytes))
        start, self._in_save = time.perf_counter(), True
        self.waited.append(0.0)
        super().save(runner, name)
        self._in_save = False
        self.blocked.append(time.perf_counter() - start)
        if self.disk_dir is not None and self.nbytes:  # and just after it
            self.disk_after.append(disk_speed(self.disk_dir, self.nbytes))
        if self._writer is not None:
            self.copied.append(self._writer.last_copy_seconds)

    def _finish_saving(self, runner) -> None:
        start = time.perf_counter()
        pending = self._writer is not None and self._writer.in_flight is not None
        super()._finish_saving(runner)
        if pending:
            self.written.append(self._writer.last_write_seconds)
        if self._in_save:
            self.waited[-1] += time.perf_counter() - start


def _timing(name: str, fn):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _parts[name].append(time.perf_counter() - start)

    return timed


# The parts of a save, timed where save.py calls them (in the writer thread when async).
for _name in ("_write_model", "_write_optimizer", "write_manifest"):
    setattr(files_module, _name, _timing(_name, getattr(files_module, _name)))
save_module.publish_files = _timing("publish_files", save_module.publish_files)
# nan_policy='stop' (the default) checks that the weights are finite before every save.
NanGuardHook.before_save_checkpoint = _timing("nan_check", NanGuardHook.before_save_checkpoint)


def disk_speed(folder: Path, nbytes: int) -> float:
    """MB/s of writing `nbytes` to a new file in `folder` and fsyncing it."""
    chunk = bytearray(os.urandom(16 << 20))
    path = folder / ".disk_speed"
    start = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        left = nbytes
        while left > 0:
            left -= f.write(memoryview(chunk)[: min(left, len(chunk))])
        os.fsync(f.fileno())
    seconds = time.perf_counter() - start
    path.unlink()
    return nbytes / seconds / MB


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run(work_dir: Path, args, async_save: bool, nbytes: int) -> dict:
    _parts.clear()
    torch.manual_seed(0)
    layers = max(1, round(args.mb * MB / 4 / (args.width * args.width + args.width)))
    model = Stack(args.width, layers)
    data = [{"x": torch.randn(args.width)} for _ in range(args.batch)]
    hook = TimedCheckpointHook(
        disk_dir=None if async_save else work_dir,
        interval=args.interval,
        by_epoch=False,
        async_save=async_save,
        nbytes=nbytes,
    )
    runner = Runner(
        model=model,
        work_dir=work_dir,
        train_dataloader=dict(dataset=data, batch_size=args.batch),
        train_cfg=dict(by_epoch=False, max_iters=args.interval * args.saves),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-4)),
        default_hooks=dict(logger=None, checkpoint=hook),
        nan_policy=args.nan_policy,
    )
    start = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - start
    nbytes = folder_bytes(work_dir / f"iter_{args.interval * args.saves}")
    out = dict(
        bytes=nbytes,
        params=sum(p.numel() for p in model.parameters()),
        blocked=hook.blocked,
        waited=hook.waited,
        copied=hook.copied,
        written=hook.written,
        parts={k: list(v) for k, v in _parts.items()},
        wall=wall,
        disk=hook.disk,
        disk_after=hook.disk_after,
    )
    del runner, model, hook
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    gc.collect()
    return out


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    if not values:
        return "-"
    v = [x * scale for x in values]
    return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=300, help="MB of float32 parameters")
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--interval", type=int, default=6, help="iterations between saves")
    parser.add_argument("--saves", type=int, default=3, help="saves per run")
    parser.add_argument("--rounds", type=int, default=2, help="(sync, async) pairs of runs")
    parser.add_argument(
        "--nan-policy", default="stop", help="Runner's nan_policy ('stop': default)"
    )
    parser.add_argument("--dir", default="work_dirs", help="the disk to test (a temp dir in it)")
    args = parser.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="async_save_", dir=args.dir))
    load_before = os.getloadavg()
    results: dict[bool, list[dict]] = {False: [], True: []}
    size = int(3 * args.mb * MB)  # weights and AdamW's two moments; the first save tells
    for round_ in range(args.rounds):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        for async_save in order:
            work_dir = base / f"r{round_}_{'async' if async_save else 'sync'}"
            work_dir.mkdir()
            results[async_save].append(run(work_dir, args, async_save, size))
            size = results[async_save][-1]["bytes"]
            shutil.rmtree(work_dir)
    load_after = os.getloadavg()
    base.rmdir()
    report(args, base, results, load_before, load_after)


def report(args, base, results, load_before, load_after) -> None:
    sync, bg = results[False], results[True]
    nbytes = sync[-1]["bytes"]
    before = [v for r in sync for v in r["disk"]]  # measured just before each sync save
    after = [v for r in sync for v in r["disk_after"]]  # and just after it
    disk = [(b + a) / 2 for b, a in zip(before, after)]
    sync_s = [t for r in sync for t in r["blocked"]]
    stall = [t for r in bg for t in r["blocked"]]
    waited = [t for r in bg for t in r["waited"]]
    copied = [t for r in bg for t in r["copied"]]
    written = [t for r in bg for t in r["written"]]
    sync_mbs = [nbytes / MB / t for t in sync_s]
    share = [m / d for m, d in zip(sync_mbs, disk)]  # each save against the disk around it
    part = lambda runs, k: [t for r in runs for t in r["parts"].get(k, [])]  # noqa: E731
    print(f"# async_save bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after. work_dir {base}."
    )
    print(
        f"Model: {sync[0]['params'] / 1e6:.1f} M float32 parameters ({sync[0]['params'] * 4 / MB:.0f} MB) "
        f"in Linear({args.width}, {args.width}) layers, AdamW; checkpoint {nbytes / MB:.0f} MB; "
        f"{args.saves} saves per run, every {args.interval} iterations; {args.rounds} rounds "
        f"(sync and async runs alternate); the disk is measured right before and after each "
        f"sync save; nan_policy={args.nan_policy!r}. "
        f"Medians (min-max); MB = 10^6 bytes.\n"
    )
    print("| measure | value | goal |")
    print("| --- | ---: | --- |")
    size = f"{nbytes / MB:.0f} MB"
    print(
        f"| disk: write + fsync of {size} before each sync save, MB/s | {spread(before, fmt='{:.0f}')} | |"
    )
    print(f"| disk: the same after each sync save, MB/s | {spread(after, fmt='{:.0f}')} | |")
    print(f"| disk: mean of before and after, MB/s | {spread(disk, fmt='{:.0f}')} | |")
    print(f"| sync save, s | {spread(sync_s)} | |")
    print(
        f"| sync save, MB/s | {spread(sync_mbs, fmt='{:.0f}')} | >= 70% of disk: "
        f"{med(sync_mbs) / med(disk):.0%} |"
    )
    print(f"| sync save / disk, save by save | {spread(share, 100, '{:.0f}%')} | |")
    print(
        f"| sync: NaN guard's finite check of the weights, s | {spread(part(sync, 'nan_check'))} | |"
    )
    for key, label in [
        ("_write_model", "weights file (safetensors + fsync)"),
        ("_write_optimizer", "optimizer file (torch.save + fsync)"),
        ("write_manifest", "manifest (XXH3 of every file)"),
        ("publish_files", "publish (fsync dir, rename)"),
    ]:
        print(f"| sync: {label}, s | {spread(part(sync, key))} | |")
    print(
        f"| async: stall per save, s | {spread(stall, fmt='{:.3f}')} | <= 10% of sync: "
        f"{med(stall) / med(sync_s):.1%} |"
    )
    print(f"| async: of which copying to CPU, s | {spread(copied, fmt='{:.3f}')} | |")
    print(
        f"| async: of which the NaN guard's finite check, s | "
        f"{spread(part(bg, 'nan_check'), fmt='{:.3f}')} | |"
    )
    print(
        f"| async: of which waiting for the previous save, s | {spread(waited, fmt='{:.3f}')} | |"
    )
    print(f"| async: background write + publish, s | {spread(written)} | |")
    print(
        f"| run wall time, sync / async, s | {med([r['wall'] for r in sync]):.1f} / "
        f"{med([r['wall'] for r in bg]):.1f} | |"
    )


if __name__ == "__main__":
    main()

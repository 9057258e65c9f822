"""Sharded save, SIGKILL and resume under Accelerate's own FSDP2 and DeepSpeed, on one GPU.

For each mode, one process under ``accelerate launch``:

  fsdp2   --use_fsdp --fsdp_version 2
  zero2   --use_deepspeed --zero_stage 2   (skipped, with the reason, if DeepSpeed does not import)
  zero3   --use_deepspeed --zero_stage 3

three runs of a small residual MLP (AdamW, accumulative_counts=2, clip_grad max_norm=1,
a checkpoint every 4 of 12 iterations): an uninterrupted one; one killed with SIGKILL after
iteration 6 (its last checkpoint is iter_4); and ``resume=True`` from what the killed run
left, to iteration 12. The resumed run's final weights must equal the uninterrupted run's
(max |difference| printed; 0 is bit-identical), and ``python -m engine export`` of the resumed
run's last checkpoint must equal them too (DCP consolidation, or DeepSpeed's zero_to_fp32).

    python bench/gpu_sharded.py --out sharded.md          # on a GPU (bench/gpu_check.sh)
    python bench/gpu_sharded.py --dry-run                 # no GPU: the same flow, one plain process

``--dry-run`` runs everything that a CPU can (the driver, the worker, kill, resume, export
and the comparison) in one process without a launcher flag, so the script is checked
end to end before it meets a GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ITERS, KILL_AFTER, INTERVAL = 12, 6, 4
MODES = {
    "fsdp2": ["--use_fsdp", "--fsdp_version", "2"],
    "zero2": ["--use_deepspeed", "--zero_stage", "2"],
    "zero3": ["--use_deepspeed", "--zero_stage", "3"],
}


# -- the worker: one training run -----------------------------------------------------------
def worker(work: Path, phase: str, out: Path) -> None:
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader

    from engine import BaseModel, Hook, Runner

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 64)

        def forward(self, x):
            return x + torch.tanh(self.fc(x))

    class Net(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.embed = nn.Linear(16, 64)
            self.blocks = nn.Sequential(*[Block() for _ in range(4)])
            self.head = nn.Linear(64, 1)

        def forward(self, inputs, targets=None, mode="tensor"):
            pred = self.head(self.blocks(self.embed(inputs)))
            return {"loss": F.mse_loss(pred, targets)} if mode == "loss" else pred

    class KillAfter(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.state.iter == KILL_AFTER:
                os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no final save

    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 16, generator=g)
    data = [{"inputs": x[i], "targets": x[i, :1] * x[i, 1:2]} for i in range(len(x))]
    runner = Runner(
        model=Net(),
        work_dir=work,
        train_dataloader=DataLoader(data, batch_size=16, shuffle=True),
        train_cfg=dict(by_epoch=False, max_iters=ITERS),
        optim_wrapper=dict(
            optimizer=dict(type="AdamW", lr=1e-3),
            accumulative_counts=2,
            clip_grad=dict(max_norm=1.0),
        ),
        randomness=dict(seed=0),
        default_hooks=dict(
            logger=None, checkpoint=dict(type="CheckpointHook", interval=INTERVAL, by_epoch=False)
        ),
        custom_hooks=[KillAfter()] if phase == "kill" else None,
        resume=phase == "resume",
    )
    runner.train()
    params = _whole_params(runner)
    if runner.accelerator.is_main_process:
        torch.save(params, out)
        print(f"WORKER DONE {phase} {runner.accelerator.distributed_type.value}", flush=True)


def _whole_params(runner) -> dict:
    """The model's whole fp32 parameters, whatever shards them (collective)."""
    import contextlib

    from torch.distributed.tensor import DTensor

    model, gather = runner._raw_model, contextlib.nullcontext()
    if runner.accelerator.distributed_type.value == "DEEPSPEED":
        import deepspeed

        gather = deepspeed.zero.GatheredParameters(list(model.parameters()))  # ZeRO-3
    with gather:
        out = {}
        for name, p in model.named_parameters():
            value = p.full_tensor() if isinstance(p, DTensor) else p
            out[name] = value.detach().float().cpu().clone()
    return out


# -- the driver --------------------------------------------------------------------------
def _launch(mode: str | None, dry_run: bool) -> list[str]:
    if dry_run:
        return [sys.executable]
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
            "--mixed_precision", "no", *MODES[mode]]  # fmt: skip


def _run(cmd: list[str], timeout: float, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def check_mode(mode: str, dry_run: bool, tmp: Path, deadline: float) -> str:
    """One markdown table row for `mode`."""
    import torch
    from safetensors.torch import load_file

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    script = [str(Path(__file__).resolve()), "--worker"]
    base = tmp / mode
    runs = [("full", base / "full"), ("kill", base / "killed"), ("resume", base / "killed")]
    seconds = []
    for phase, work in runs:
        left = deadline - time.monotonic()
        if left < 20:
            return f"| {mode} | not run: the time budget ran out before `{phase}` | | |"
        start = time.monotonic()
        out = base / f"{phase}.pt"
        proc = _run([*_launch(mode, dry_run), *script, str(work), phase, str(out)], left, env)
        seconds.append(time.monotonic() - start)
        killed = phase == "kill"
        if (killed and out.exists()) or (not killed and "WORKER DONE" not in proc.stdout):
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return (
                f"| {mode} | FAILED in `{phase}` (exit {proc.returncode}): {' / '.join(tail)} | | |"
            )
    full = torch.load(base / "full.pt", weights_only=True)
    resumed = torch.load(base / "resume.pt", weights_only=True)
    diff = max((full[k] - resumed[k]).abs().max().item() for k in full)
    last = base / "killed" / f"iter_{ITERS}"
    exported = base / "export.safetensors"
    proc = _run([sys.executable, "-m", "engine", "export", str(last), str(exported)], 120, env)
    if proc.returncode != 0:
        export = f"export FAILED: {proc.stderr.strip().splitlines()[-1:]}"
    else:
        weights = load_file(exported)
        export_diff = max((weights[k].float() - full[k]).abs().max().item() for k in full)
        export = f"export max diff {export_diff:.2e}"
    verdict = "PASS" if diff <= 1e-6 and export.startswith("export max") else "CHECK"
    timing = " + ".join(f"{s:.0f}" for s in seconds)
    return f"| {mode} | {verdict}: resumed vs uninterrupted max diff {diff:.2e} | {export} | {timing} s |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="no GPU: one plain process")
    parser.add_argument("--budget-s", type=float, default=150.0, help="stop starting runs after")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown here too")
    parser.add_argument(
        "--worker", nargs=3, metavar=("WORK", "PHASE", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        work, phase, out = args.worker
        worker(Path(work), phase, Path(out))
        return 0
    deadline = time.monotonic() + args.budget_s
    lines = ["| mode | save, SIGKILL, resume | export | seconds (full + killed + resumed) |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    modes = ["dry-run"] if args.dry_run else list(MODES)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            if mode.startswith("zero"):
                reason = _deepspeed_missing()
                if reason:
                    lines.append(f"| {mode} | skipped: {reason} | | |")
                    continue
            lines.append(check_mode(mode, args.dry_run, Path(tmp), deadline))
            print(lines[-1], flush=True)
    text = "### Sharded resume under accelerate launch (one process)\n\n" + "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if all("FAILED" not in line and "CHECK" not in line for line in lines) else 1


def _deepspeed_missing() -> str | None:
    if importlib.util.find_spec("deepspeed") is None:
        return "DeepSpeed is not installed (pip install deepspeed)"
    proc = subprocess.run(
        [sys.executable, "-c", "import deepspeed"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return "DeepSpeed does not import: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return None


if __name__ == "__main__":
    sys.exit(main())

"""One work_dir, one run: the lock held by Runner.train() (engine.checkpoint.lock).

Two real processes: the first trains and pauses mid-run; the second, started on the same
work_dir, refuses with one line naming the first (pid, host) and leaves the first's
in-progress save alone; the first then finishes. A lock left by a dead process is taken
over with a warning; one from another host is refused.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from engine import BaseModel, Runner
from engine.checkpoint.lock import LOCK, WorkDirBusyError

SCRIPT = r"""
import sys, time
from pathlib import Path
import torch
from torch import nn
from engine import BaseModel, Hook, Runner

class Linear(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 1)
    def forward(self, x, y, mode="tensor"):
        return {"loss": (self.net(x) - y).pow(2).mean()}

class Pause(Hook):
    # At iteration 2: say so, then wait until told to go on.
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == 2 and sys.argv[2] == "pause":
            (Path(sys.argv[1]).parent / "ready").write_text("1")
            deadline = time.time() + 120
            while not (Path(sys.argv[1]).parent / "go").exists() and time.time() < deadline:
                time.sleep(0.05)

g = torch.Generator().manual_seed(0)
x = torch.randn(8, 3, generator=g)
runner = Runner(
    model=Linear(), work_dir=sys.argv[1],
    train_dataloader=dict(dataset=list(zip(x, x.sum(1, keepdim=True))), batch_size=2),
    train_cfg=dict(by_epoch=False, max_iters=4),
    optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
    default_hooks=dict(logger=None), custom_hooks=[Pause()], resume=True,
)
try:
    runner.train()
except Exception as err:
    print("ERROR", type(err).__name__, err, flush=True)
    sys.exit(3)
print("DONE", runner.iter, flush=True)
"""


def launch(tmp_path: Path, work_dir: Path, mode: str) -> subprocess.Popen:
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.Popen(
        [sys.executable, str(script), str(work_dir), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_a_second_run_on_a_busy_work_dir_refuses_and_deletes_nothing(tmp_path):
    work_dir = tmp_path / "run"
    first = launch(tmp_path, work_dir, "pause")
    deadline = time.time() + 120
    while not (tmp_path / "ready").exists():
        assert first.poll() is None, first.stdout.read()
        assert time.time() < deadline, "the first run never reached iteration 2"
        time.sleep(0.1)
    holder = json.loads((work_dir / LOCK).read_text())
    assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
    in_progress = work_dir / ".tmp_iter_4"  # as the first run's save would leave it mid-write
    in_progress.mkdir()
    (in_progress / "model.safetensors").write_bytes(b"half")

    second = launch(tmp_path, work_dir, "run")
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 3, out
    line = next(line for line in out.splitlines() if line.startswith("ERROR"))
    assert line.startswith("ERROR WorkDirBusyError"), out
    assert f"is in use by process {first.pid} on this host ({socket.gethostname()})" in line
    assert (in_progress / "model.safetensors").read_bytes() == b"half"  # not cleaned

    in_progress.rename(tmp_path / "moved_aside")  # the first run's save would replace it
    (tmp_path / "go").write_text("1")
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0 and "DONE 4" in out, out
    assert not (work_dir / LOCK).exists()  # released at the end of train()
    assert (work_dir / "last_checkpoint").read_text().strip() == "iter_4"


class Linear(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)

    def forward(self, x, y, mode="tensor"):
        return {"loss": (self.net(x) - y).pow(2).mean()}


def make(work_dir: Path) -> Runner:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g)
    return Runner(
        model=Linear(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=list(zip(x, x.sum(1, keepdim=True))), batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=4),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=None),
        resume=True,
    )


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(done.stdout)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    return pid


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path, engine_log):
    work_dir = tmp_path / "run"
    work_dir.mkdir()
    pid = dead_pid()
    record = {"pid": pid, "host": socket.gethostname(), "started": "yesterday"}
    (work_dir / LOCK).write_text(json.dumps(record))
    stale_save = work_dir / ".tmp_iter_2"  # its interrupted save: no living run owns it
    stale_save.mkdir()
    runner = make(work_dir)
    runner.train()
    assert runner.iter == 4
    warnings = [m for m in engine_log if m.startswith("Taking over")]
    assert warnings == [
        f"Taking over {work_dir / LOCK}: process {pid} (started yesterday) that held it is gone"
    ]
    assert not stale_save.exists() and not (work_dir / LOCK).exists()


def test_a_lock_from_another_host_is_refused_before_any_work(tmp_path):
    work_dir = tmp_path / "run"
    work_dir.mkdir()
    record = {"pid": 4242, "host": "node-17", "started": "2026-11-28 10:00:00 UTC"}
    (work_dir / LOCK).write_text(json.dumps(record))
    runner = make(work_dir)
    with pytest.raises(WorkDirBusyError) as err:
        runner.train()
    assert str(err.value) == (
        f"work_dir {work_dir} is in use by process 4242 on host node-17 since 2026-11-28 "
        f"10:00:00 UTC; wait for it to end or choose another work_dir (delete {work_dir / LOCK} "
        "if that run is gone)"
    )
    assert runner.iter == 0 and not (work_dir / "last_checkpoint").exists()
    assert json.loads((work_dir / LOCK).read_text()) == record  # not ours: left alone

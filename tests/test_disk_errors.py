"""Full disks and read-only folders (engine.checkpoint.disk_errors).

Real file systems where the machine allows it: a tmpfs of a few kB, or remounted
read-only, inside a user namespace (``unshare -rm``; skipped where that is not allowed),
and ``/dev/full`` for a log file. Each failed write is one line naming the path, the free
space and what to do; a failed log write never stops training.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from engine import BaseModel, Runner

SCRIPT = r"""
import sys
import torch
from torch import nn
from engine import BaseModel, Runner

class Big(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 1)
        self.register_buffer("table", torch.zeros(50_000))  # 200 kB: more than the disk holds
    def forward(self, x, y, mode="tensor"):
        return {"loss": (self.net(x) - y).pow(2).mean()}

x = torch.randn(8, 3)
try:
    runner = Runner(
        model=Big(), work_dir=sys.argv[1] + "/run",
        train_dataloader=dict(dataset=list(zip(x, x.sum(1, keepdim=True))), batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=4),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=None),
    )
    runner.train()
except Exception as err:
    print("ERROR", type(err).__name__, err, flush=True)
    sys.exit(3)
print("DONE", flush=True)
"""


def run_on_tmpfs(tmp_path: Path, options: str, readonly: bool) -> str:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    mount = tmp_path / "disk"
    mount.mkdir()
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    steps = [f"mount -t tmpfs -o {options} tmpfs {mount}"]
    if readonly:
        steps.append(f"mount -o remount,ro {mount}")
    steps.append(f"{sys.executable} {script} {mount}")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not allowed here")
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", " && ".join(steps)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 3, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "Traceback" not in out, out
    return errors[0]


def test_a_read_only_work_dir_is_one_line_before_any_work(tmp_path):
    line = run_on_tmpfs(tmp_path, "size=1m", readonly=True)
    assert line == (
        f"ERROR OSError using work_dir failed at {tmp_path}/disk/run: the file system is "
        "read-only (1.0 MB free there); choose a writable work_dir"
    )


def test_a_full_disk_during_a_save_is_one_line_naming_path_and_free_space(tmp_path):
    line = run_on_tmpfs(tmp_path, "size=64k", readonly=False)
    assert line.startswith(
        f"ERROR CheckpointError saving checkpoint 'iter_4' failed at {tmp_path}/disk/run: no "
        "space left on the device ("
    ), line
    assert line.endswith(
        " free there); free space or choose another work_dir; the previous checkpoint is intact"
    ), line


class Linear(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)

    def forward(self, x, y, mode="tensor"):
        return {"loss": (self.net(x) - y).pow(2).mean()}


RUN = "20261128_000000"  # the run folder's name, fixed so that a file in it can be planted


def _run_folder_with_full_file(tmp_path: Path, monkeypatch, name: str) -> Path:
    """A work_dir whose next run folder holds `name` as a link to /dev/full (ENOSPC)."""
    import engine.runner.runner

    work_dir = tmp_path / "run"
    (work_dir / RUN).mkdir(parents=True)
    (work_dir / RUN / name).symlink_to("/dev/full")
    monkeypatch.setattr(engine.runner.runner, "new_run_folder", lambda root, create: root / RUN)
    return work_dir


def test_a_full_disk_while_logging_warns_once_and_training_goes_on(
    tmp_path, engine_log, monkeypatch
):
    work_dir = _run_folder_with_full_file(
        tmp_path, monkeypatch, "scalars.jsonl"
    )  # every write: ENOSPC
    x = torch.randn(8, 3)
    runner = Runner(
        model=Linear(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=list(zip(x, x.sum(1, keepdim=True))), batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=8),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=dict(type="LoggerHook", interval=1)),
    )
    runner.train()
    assert runner.iter == 8 and (work_dir / "last_checkpoint").read_text().strip() == "iter_8"
    failures = [m for m in engine_log if "failed at" in m]
    assert len(failures) == 1, failures
    assert failures[0].startswith(
        f"logging failed at {work_dir / RUN / 'scalars.jsonl'}: no space left on the device ("
    )
    assert failures[0].endswith(
        "free space or choose another work_dir; training goes on without it"
    )


def test_torch_and_safetensors_disk_errors_are_recognised():
    from safetensors import SafetensorError

    from engine.checkpoint.disk_errors import is_disk_error, write_failure

    torch_full = RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")
    st_full = SafetensorError(
        "Error while serializing: I/O error: No space left on device (os error 28)"
    )
    assert is_disk_error(torch_full) and is_disk_error(st_full)
    assert not is_disk_error(RuntimeError("CUDA out of memory"))
    line = write_failure("saving", Path("/"), st_full)
    assert line.startswith("saving failed at /: no space left on the device (") and "\n" not in line


def test_a_full_disk_under_run_log_warns_once_and_training_goes_on(
    tmp_path, engine_log, monkeypatch
):
    work_dir = _run_folder_with_full_file(tmp_path, monkeypatch, "run.log")
    x = torch.randn(8, 3)
    runner = Runner(
        model=Linear(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=list(zip(x, x.sum(1, keepdim=True))), batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=8),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=dict(type="LoggerHook", interval=1)),
    )
    runner.train()
    assert runner.iter == 8 and (work_dir / "last_checkpoint").read_text().strip() == "iter_8"
    failures = [m for m in engine_log if "failed at" in m]
    assert len(failures) == 1, failures
    assert failures[0].startswith(f"logging failed at {work_dir / RUN / 'run.log'}: no space left")
    logging.getLogger("engine").handlers[:] = [
        h for h in logging.getLogger("engine").handlers if not isinstance(h, logging.FileHandler)
    ]


def test_writing_a_config_on_a_full_disk_is_one_line(tmp_path):
    from engine.checkpoint.disk_errors import write_file

    (tmp_path / "config.json").symlink_to("/dev/full")
    with pytest.raises(OSError) as err:
        write_file(tmp_path / "config.json", "{}\n", "writing the config")
    assert str(err.value).startswith(
        f"writing the config failed at {tmp_path / 'config.json'}: no space left on the device ("
    )
    assert str(err.value).endswith("free space or choose another work_dir")

"""Two real processes (``accelerate launch``, CPU/gloo): an OptimWrapperDict without a
model wrapper builds, and a save that fails on one rank raises on every rank (issue 9)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from run_files import without_run_folders

SCRIPT = Path(__file__).with_name("dist_silent_wrong_script.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(work_dir: Path, scenario: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for key in [k for k in env if k.startswith("ACCELERATE_")]:
        del env[key]
    env["ACCELERATE_USE_CPU"] = "true"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", "2", "--main_process_port", str(_free_port()),
        str(SCRIPT), str(work_dir), scenario,
    ]  # fmt: skip
    # A hang (a rank left in a barrier) shows as a timeout, not a stuck test session.
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def test_optim_wrapper_dict_without_model_wrapper_builds_on_two_processes(tmp_path):
    proc = _launch(tmp_path, "dict_no_wrapper")
    report = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    assert sorted(line for line in proc.stdout.splitlines() if line.startswith("BUILT")) == [
        "BUILT rank=0",
        "BUILT rank=1",
    ], report
    assert (
        "optim_wrapper has members ['generator', 'discriminator']" in proc.stdout + proc.stderr
    ), report


def test_a_save_failing_on_one_rank_raises_on_every_rank(tmp_path):
    proc = _launch(tmp_path, "failed_save")
    report = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    raised = sorted(line for line in proc.stdout.splitlines() if line.startswith("RAISED"))
    assert [line.split()[1] for line in raised] == ["rank=0", "rank=1"], report
    assert "no space left on the device" in raised[0] and "another process" in raised[1], report
    assert (tmp_path / "last_checkpoint").read_text().strip() == "epoch_1"
    assert without_run_folders(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["epoch_1"]

"""Checkpoints on several machines (engine.checkpoint.node_local), with two real processes.

Node-local disks are imitated by giving each process its own work_dir: the main process
writes every checkpoint (every process's random state included), decides which one to
resume, and sends it to the other process; both end bit-identical to an uninterrupted run.
The shared layout runs the same steps on one work_dir.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "node_local_script.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("layout", ["node-local", "shared"])
def test_resume_on_two_processes_is_exact_on_node_local_and_shared_disks(tmp_path, layout):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for key in [k for k in env if k.startswith("ACCELERATE_")]:
        del env[key]
    env["PYTHONPATH"] = str(Path(__file__).parents[1])
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", "2", "--main_process_port", str(_free_port()),
        str(SCRIPT), str(tmp_path), layout,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    report = f"\n--- stdout\n{proc.stdout[-5000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    assert f"PASS {layout}" in proc.stdout, report

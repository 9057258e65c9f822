"""A Runner with MMEngine's ``ZeroRedundancyOptimizer`` on two processes checkpoints and
resumes exactly. Its optimizer state is split across the processes, so taking it is a
collective: a save that asked only the main process for it left the others waiting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("zero_checkpoint_script.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(work_dir: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", ACCELERATE_USE_CPU="true")
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", "2", "--main_process_port", str(_free_port()),
        str(SCRIPT), str(work_dir), *args,
    ]  # fmt: skip
    # A save that leaves a process in a collective shows as a timeout, not a stuck session.
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_zero_checkpoint_resumes_exactly_on_two_processes(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    _launch(straight, "8")
    _launch(split, "4")  # saves iter_4
    assert (split / "iter_4" / "optimizer.pt").is_file()
    _launch(split, "8", "resume")
    a = torch.load(straight / "final_8.pt")
    b = torch.load(split / "final_8.pt")
    for key, value in a["weights"].items():
        assert torch.equal(value, b["weights"][key]), key
    assert len(a["momenta"]) == 4
    for x, y in zip(a["momenta"], b["momenta"]):
        assert torch.equal(x, y)

"""Two "machines" on this one: ``accelerate launch --num_machines 2 --machine_rank 0|1``
with one process each, meeting at 127.0.0.1, train as two processes on one machine do."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).parent
SCRIPT = TESTS / "dist_train_script.py"


def _scenarios():
    if "dist_train_script" not in sys.modules:  # tyro and dataclasses look it up by name
        spec = importlib.util.spec_from_file_location("dist_train_script", SCRIPT)
        sys.modules["dist_train_script"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["dist_train_script"])
    return sys.modules["dist_train_script"]


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def test_two_machines_of_one_process_match_one_process_with_the_global_batch(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    port = _port()
    machines = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                "--multi_gpu",
                "--num_machines",
                "2",
                "--machine_rank",
                str(rank),
                "--num_processes",
                "2",
                "--main_process_ip",
                "127.0.0.1",
                "--main_process_port",
                port,
                str(SCRIPT),
                str(tmp_path),
                "ddp",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [m.communicate(timeout=300) for m in machines]
    report = "\n".join(
        f"--- machine {i}\n{o[0][-3000:]}\n{o[1][-3000:]}" for i, o in enumerate(outputs)
    )
    assert all(m.returncode == 0 for m in machines), report
    assert "PASS ddp processes=2" in outputs[0][0], report

    reference = tmp_path / "reference"
    reference.mkdir()
    _scenarios().scenario_ddp(reference)  # this process alone, batch 8
    for counts in (1, 2):
        two = torch.load(tmp_path / f"ddp_acc{counts}_np2.pt", weights_only=True)
        one = torch.load(reference / f"ddp_acc{counts}_np1.pt", weights_only=True)
        for key in one:
            torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=0, msg=key)

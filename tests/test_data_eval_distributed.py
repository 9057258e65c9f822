"""engine.dataset's samplers and collate dicts, and the validation loss, under two real
processes (tests/dist_data_eval_script.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "dist_data_eval_script.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for key in [k for k in env if k.startswith("ACCELERATE_")]:
        del env[key]
    out = tmp_path_factory.mktemp("dist_dataset")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", "2", "--main_process_port", str(_free_port()), str(SCRIPT), str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return proc


@pytest.mark.parametrize("scenario", ["sampler_dict", "built_sampler", "resume", "val_loss"])
def test_two_processes(launch, scenario):
    report = f"\n--- stdout\n{launch.stdout[-4000:]}\n--- stderr\n{launch.stderr[-4000:]}"
    assert f"PASS {scenario}" in launch.stdout, report

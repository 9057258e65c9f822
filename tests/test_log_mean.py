"""The logged loss is the mean over processes, not the main process's own (a real launch)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("dist_log_script.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_logged_loss_is_the_mean_over_two_processes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", ACCELERATE_USE_CPU="true")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launch += ["--num_processes", "2", "--main_process_port", str(free_port())]
    proc = subprocess.run(
        [*launch, str(SCRIPT), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("LOSSES")] or [
        proc.stderr[-3000:]
    ]
    # rank 0's loss is 1, rank 1's is 2: the log says 1.5 at both windows, not 1
    assert json.loads(line.split(" ", 1)[1]) == [1.5, 1.5], proc.stdout[-3000:]

"""``nan_policy`` under ``model_wrapper='fsdp2'`` when one process alone sees a NaN (real CPU
processes over gloo): every process decides alike, and the weights equal an unsharded
process's that saw the same NaN (tests/fsdp2_nan_script.py runs both).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_fsdp2 import _port
from test_fsdp2_resume import _env

SCRIPT = Path(__file__).parent / "fsdp2_nan_script.py"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("fsdp2_nan")
    launch = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    procs = [  # the sharded launch and its one-process reference, side by side
        subprocess.Popen(
            [sys.executable, *args, str(SCRIPT), str(out)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for args in ([*launch, "--main_process_port", _port()], [])
    ]
    sharded, single = (p.communicate(timeout=300)[0] for p in procs)
    assert "PASS processes=2" in sharded, sharded[-5000:]
    assert "PASS processes=1" in single, single[-5000:]
    return out, sharded


def test_a_nan_in_one_process_shard_skips_the_update_on_every_process(runs):
    out, _ = runs
    sharded = torch.load(out / "skip_2.pt", weights_only=True)
    single = torch.load(out / "skip_1.pt", weights_only=True)
    # Process 0's gradient shard was finite: it skipped because process 1's was not.
    assert sharded["skipped"].tolist() == [1.0, 1.0] and single["skipped"].tolist() == [1.0]
    for key, value in single["weights"].items():
        assert torch.isfinite(sharded["weights"][key]).all(), key
        torch.testing.assert_close(sharded["weights"][key], value, atol=1e-5, rtol=0)


def test_a_nan_loss_on_one_process_stops_every_process_at_the_same_check(runs):
    out, log = runs
    # The NaN came at iteration 3, on process 1 only; the check at iteration 4 stops both.
    assert "RAISED rank=0 iter=4" in log and "RAISED rank=1 iter=4" in log
    sharded = torch.load(out / "stop_2.pt", weights_only=True)
    single = torch.load(out / "stop_1.pt", weights_only=True)
    for key, value in single["weights"].items():
        torch.testing.assert_close(sharded["weights"][key], value, atol=1e-5, rtol=0)

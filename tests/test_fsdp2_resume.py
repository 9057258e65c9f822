"""A sharded run (``model_wrapper='fsdp2'``, 2 CPU processes over gloo) with an EMA: killed
with SIGKILL mid-epoch and resumed, it ends bit-identical to an uninterrupted one on every
process; its average equals an unsharded process's; its checkpoint reshards into one
process and exports the average. tests/fsdp2_resume_script.py is the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.checkpoint.export import export_weights
from fsdp2_script import Net, data
from test_fsdp2 import _port

SCRIPT = Path(__file__).parent / "fsdp2_resume_script.py"
LAUNCH = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", ACCELERATE_USE_CPU="true")
    return env


def _start(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, **kwargs,
    )  # fmt: skip


def _finish(proc: subprocess.Popen, marker: str) -> str:
    output = proc.communicate(timeout=300)[0]
    assert marker in output, output[-5000:]
    return output


def _kill_when_ready(proc: subprocess.Popen, out: Path) -> int:
    """SIGKILL the launcher and its workers (each in a session of its own) once both
    workers wait after iteration 10: between checkpoints iter_8 and iter_12."""
    ready = [out / "ready_0", out / "ready_1"]
    deadline = time.monotonic() + 240
    try:
        while not all(r.is_file() and r.read_text() for r in ready):
            assert proc.poll() is None, proc.communicate()[0][-5000:]
            assert time.monotonic() < deadline, "the run never reached iteration 10"
            time.sleep(0.2)
    finally:  # on failure too: no worker is left sleeping
        for r in ready:
            if r.is_file() and r.read_text():
                os.kill(int(r.read_text()), signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    return proc.returncode


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("fsdp2_resume")
    script = [str(SCRIPT), str(out)]
    killed = _start(
        [*LAUNCH, "--main_process_port", _port(), *script, "killed", str(out / "killed"),
         "--wait-at", "10"],
        start_new_session=True,
    )  # fmt: skip
    full = _start([*LAUNCH, "--main_process_port", _port(), *script, "full", str(out / "full")])
    single = _start([*script, "single", str(out / "single")])
    code = _kill_when_ready(killed, out)
    _finish(full, "PASS full processes=2")
    _finish(single, "PASS single processes=1")
    resumed = _start(
        [*LAUNCH, "--main_process_port", _port(), *script, "resumed", str(out / "killed"),
         "--resume", "latest"]
    )  # fmt: skip
    reshard = _start(
        [*script, "reshard", str(out / "reshard"), "--resume", str(out / "full" / "iter_12")]
    )
    log = _finish(resumed, "PASS resumed processes=2")
    _finish(reshard, "PASS reshard processes=1")
    return out, code, log


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("rank", [0, 1])
def test_a_sharded_run_sigkilled_mid_epoch_resumes_bit_identical(runs, rank):
    out, code, log = runs
    assert code == -signal.SIGKILL
    # Killed after iteration 10 (pass 2, batch 4 of 6); auto-resume finds iter_8 (batch 2).
    assert f"Resumed from {out / 'killed' / 'iter_8'}: epoch 1, iter 8, batch 2" in log
    full = torch.load(out / f"full_rank{rank}.pt", weights_only=True)
    resumed = torch.load(out / f"resumed_rank{rank}.pt", weights_only=True)
    for part in ("model", "optimizer", "ema"):  # this process's shards, AdamW moments, average
        assert _equal(full[part], resumed[part]), part
    assert full["optimizer"]["state"]  # the optimizer state is not empty


def test_sharded_ema_equals_unsharded_ema_at_the_same_global_batch(runs):
    out = runs[0]
    sharded = torch.load(out / "full_full.pt", weights_only=True)
    single = torch.load(out / "single_full.pt", weights_only=True)
    for key, value in single["ema"].items():
        torch.testing.assert_close(sharded["ema"][key], value, atol=1e-5, rtol=0)
        torch.testing.assert_close(sharded["model"][key], single["model"][key], atol=1e-5, rtol=0)
    assert not torch.allclose(sharded["ema"]["head.weight"], sharded["model"]["head.weight"])
    # Validation ran with the average swapped in: the last one (at the end) is the final
    # average's squared error, computed here from its whole weights.
    model = Net()
    model.load_state_dict(sharded["ema"])
    val = data()[:16]
    inputs = torch.stack([d["inputs"] for d in val])
    targets = torch.stack([d["targets"] for d in val])
    with torch.no_grad():
        expected = (model(inputs) - targets).pow(2).sum(1).mean().item()
    assert len(sharded["val"]) == 3  # iterations 6, 12 and 16
    assert sharded["val"][-1] == pytest.approx(expected, rel=1e-5)
    assert sharded["val"] == pytest.approx(single["val"], abs=1e-5)


def test_a_sharded_ema_checkpoint_resumes_in_one_process(runs):
    out = runs[0]
    full = torch.load(out / "full_full.pt", weights_only=True)
    reshard = torch.load(out / "reshard_full.pt", weights_only=True)
    for part in ("model", "ema"):  # iter_12's shards of 2 processes, read by 1
        for key, value in full[part].items():
            torch.testing.assert_close(reshard[part][key], value, atol=1e-5, rtol=0)


def test_export_of_a_sharded_ema_checkpoint_writes_the_average(runs, tmp_path):
    from safetensors.torch import load_file

    out = runs[0]
    full = torch.load(out / "full_full.pt", weights_only=True)
    exported = load_file(export_weights(out / "full" / "iter_16", tmp_path / "w.safetensors"))
    assert _equal(exported, full["ema"])  # the average of the last iteration, as unsharded


def test_a_sharded_checkpoint_keeps_the_average_in_its_shards(runs):
    from engine.checkpoint import CheckpointError
    from engine.checkpoint.find import read_engine_state
    from engine.checkpoint.sharded import ShardedEntry, with_sharded_entries

    folder = runs[0] / "full" / "iter_8"
    assert not (folder / "engine_tensors.safetensors").exists()  # no whole tensor in JSON
    entry = with_sharded_entries(read_engine_state(folder), folder)["ema_state_dict"]
    assert isinstance(entry, ShardedEntry)
    steps = entry.load({"steps": torch.tensor(0)})["steps"]  # one process, no group
    assert steps.item() == 4  # 8 iterations, accumulative_counts=2: 4 updates averaged
    with pytest.raises(CheckpointError, match="ema_state_dict"):
        entry.load({"module.missing.weight": torch.zeros(2)})

"""FSDP version 1 on CPU processes (gloo): clipping by the global norm, and engine checkpoints
of FSDP1-sharded models through DCP (save, exact resume, resume in one process, export).

Accelerate selects FSDP only on GPUs, so tests/fsdp1_script.py wraps the model with torch's
FSDP1 itself (``device_id=torch.device('cpu')``) and, for clipping, gives the OptimWrapper's
clip path a stand-in of Accelerate's FSDP1 state around the real FSDP root.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).parent / "fsdp1_script.py"


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", ACCELERATE_USE_CPU="true")
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=300
    )


def _launch() -> list[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = str(s.getsockname()[1])
    return ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--main_process_port", free]  # fmt: skip


def test_fsdp1_clipping_uses_the_global_norm(tmp_path):
    # The script asserts, on both processes, for use_orig_params True and False: the norm
    # equals the unsharded model's on the global batch, each shard is scaled by the same
    # global factor, and the gathered clipped gradients are the unsharded ones clipped;
    # then an optimizer over the head alone gets the head's global norm.
    proc = _run([*_launch(), str(SCRIPT), str(tmp_path), "clip"])
    assert "PASS clip" in proc.stdout, f"{proc.stdout[-2000:]}\n{proc.stderr[-5000:]}"
    lines = (tmp_path / "clip.txt").read_text().splitlines()
    for line in lines[:2]:  # a process's own shard has a smaller norm: it would clip wrongly
        fields = dict(item.split("=") for item in line.split())
        assert float(fields["local"]) < 0.9 * float(fields["global"]), line


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory) -> Path:
    """2 FSDP1 processes train 6 iterations with an engine checkpoint every 2; then the run
    resumes from iter_4 under 2 processes and, from a copy, under one (unsharded) process."""
    out = tmp_path_factory.mktemp("fsdp1_ckpt")
    script = [str(SCRIPT), str(out), "checkpointed"]
    proc = _run([*_launch(), *script])
    assert "PASS checkpointed processes=2" in proc.stdout, proc.stderr[-5000:]
    shutil.copytree(out / "work", out / "pristine")
    proc = _run([*_launch(), *script, "iter_4"])
    assert "PASS checkpointed processes=2" in proc.stdout, proc.stderr[-5000:]
    shutil.rmtree(out / "work")
    shutil.copytree(out / "pristine", out / "work")
    proc = _run([*script, "iter_4"])
    assert "PASS checkpointed processes=1" in proc.stdout, proc.stderr[-5000:]
    return out


def test_fsdp1_checkpoint_holds_one_shard_file_per_process_and_no_whole_model(checkpointed):
    folder = checkpointed / "pristine" / "iter_4"
    assert not (folder / "model.safetensors").exists() and not (folder / "optimizer.pt").exists()
    listed = json.loads((folder / "manifest.json").read_text())["files"]
    assert {"sharded/__0_0.distcp", "sharded/__1_0.distcp", "sharded/.metadata"} <= set(listed)


def test_fsdp1_resume_is_exact_with_the_same_process_count(checkpointed):
    full = torch.load(checkpointed / "ck_full_2.pt", weights_only=True)
    resumed = torch.load(checkpointed / "ck_iter_4_2.pt", weights_only=True)
    assert full.keys() == resumed.keys() and len(full) == 8
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_fsdp1_checkpoint_resumes_in_one_unsharded_process(checkpointed):
    full = torch.load(checkpointed / "ck_full_2.pt", weights_only=True)
    resumed = torch.load(checkpointed / "ck_iter_4_1.pt", weights_only=True)
    for key in full:  # AdamW moments resharded from 2 FSDP1 processes to one whole model
        torch.testing.assert_close(resumed[key], full[key], atol=1e-6, rtol=0)


def test_export_consolidates_an_fsdp1_checkpoint(checkpointed, tmp_path):
    out = tmp_path / "w.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "export", str(checkpointed / "pristine" / "iter_6"), str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    full = torch.load(checkpointed / "ck_full_2.pt", weights_only=True)
    exported = load_file(out)
    assert exported.keys() == full.keys() and all(torch.equal(exported[k], full[k]) for k in full)

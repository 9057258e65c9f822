"""``model_wrapper='fsdp2'`` and sharded checkpoint states, with real CPU processes (gloo).

One launch of tests/fsdp2_script.py trains under 2 processes with FSDP2 (sharded DTensor
parameters) and saves the shards; a plain process trains the same model unsharded at the
same global batch; another loads the 2-process shards into one unsharded process.
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
from torch import nn

from engine.checkpoint import CheckpointError
from engine.model.fsdp2 import _units

SCRIPT = Path(__file__).parent / "fsdp2_script.py"


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", ACCELERATE_USE_CPU="true")
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=300
    )


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fsdp2")
    launch = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    for args, marker in [
        ([*launch, "--main_process_port", _port(), str(SCRIPT), str(out), "train"], "train processes=2"),
        ([str(SCRIPT), str(out), "train"], "train processes=1"),
        ([str(SCRIPT), str(out), "reshard"], "reshard processes=1"),
    ]:  # fmt: skip
        proc = _run(args)
        assert f"PASS {marker}" in proc.stdout, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return out


def test_two_sharded_processes_equal_one_unsharded_process(runs):
    sharded = torch.load(runs / "params_2.pt", weights_only=True)
    single = torch.load(runs / "params_1.pt", weights_only=True)
    assert sharded.keys() == single.keys()
    for key in single:
        torch.testing.assert_close(sharded[key], single[key], atol=1e-5, rtol=0)
    # The run moved: the comparison is not between two untouched initialisations.
    initial = torch.load(runs / "params_init.pt", weights_only=True)
    assert not torch.allclose(single["head.weight"], initial["head.weight"], atol=1e-3)


def test_micro_batches_inside_a_window_skip_the_reduce_scatter(runs):
    # 6 iterations, accumulative_counts=2: 3 windows; 3 FSDP units (two blocks and the
    # root). Reduce-scattering every micro-batch would make 18.
    assert (runs / "reduce_scatter_2.txt").read_text() == "9"


def test_two_process_shards_load_into_one_process_and_export(runs):
    # The script asserted weight equality, restored momentum and the consolidated export.
    assert (runs / "ckpt" / "sharded" / ".metadata").is_file()
    assert len(list((runs / "ckpt" / "sharded").glob("*.distcp"))) == 2  # one file per rank


def test_units_are_the_outermost_repeated_blocks():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

    model = nn.Sequential(nn.Linear(2, 2), Block(), Block(), nn.Linear(2, 2))
    assert _units(model, None) == [model[1], model[2]]
    assert _units(model, (nn.Linear,)) == [
        model[0],
        model[1].a,
        model[1].b,
        model[2].a,
        model[2].b,
        model[3],
    ]
    flat = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    assert _units(flat, None) == [flat[0], flat[2]]  # no repeated container: each child


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory) -> Path:
    """2 sharded processes train 6 iterations with an engine checkpoint every 2; then the
    run resumes from iter_4 under 2 processes and, from a copy, under one process."""
    out = tmp_path_factory.mktemp("fsdp2_ckpt")
    launch = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    script = [str(SCRIPT), str(out), "checkpointed"]
    proc = _run([*launch, "--main_process_port", _port(), *script])
    assert "PASS checkpointed processes=2" in proc.stdout, proc.stderr[-5000:]
    shutil.copytree(out / "work", out / "pristine")
    proc = _run([*launch, "--main_process_port", _port(), *script, "iter_4"])
    assert "PASS checkpointed processes=2" in proc.stdout, proc.stderr[-5000:]
    shutil.rmtree(out / "work")
    shutil.copytree(out / "pristine", out / "work")
    proc = _run([*script, "iter_4"])
    assert "PASS checkpointed processes=1" in proc.stdout, proc.stderr[-5000:]
    return out


def test_sharded_checkpoint_is_an_engine_folder_with_one_shard_file_per_process(checkpointed):
    folder = checkpointed / "pristine" / "iter_4"
    assert not (folder / "model.safetensors").exists()  # nothing gathered the whole model
    assert len(list((folder / "sharded").glob("*.distcp"))) == 2
    listed = json.loads((folder / "manifest.json").read_text())["files"]
    assert {"sharded/__0_0.distcp", "sharded/__1_0.distcp", "sharded/.metadata"} <= set(listed)


def test_sharded_resume_is_exact_with_the_same_process_count(checkpointed):
    full = torch.load(checkpointed / "ck_full_2.pt", weights_only=True)
    resumed = torch.load(checkpointed / "ck_iter_4_2.pt", weights_only=True)
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_sharded_checkpoint_resumes_in_one_process(checkpointed):
    full = torch.load(checkpointed / "ck_full_2.pt", weights_only=True)
    resumed = torch.load(checkpointed / "ck_iter_4_1.pt", weights_only=True)
    for key in full:  # AdamW moments resharded from 2 processes to 1
        torch.testing.assert_close(resumed[key], full[key], atol=1e-5, rtol=0)


def test_export_consolidates_a_sharded_checkpoint(checkpointed, tmp_path):
    out = tmp_path / "w.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "export", str(checkpointed / "pristine" / "iter_6"), str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    full = torch.load(checkpointed / "ck_full_2.pt", weights_only=True)
    exported = load_file(out)
    assert exported.keys() == full.keys() and all(torch.equal(exported[k], full[k]) for k in full)


def test_a_corrupt_shard_is_named(checkpointed, tmp_path):
    from engine.checkpoint.manifest import verify

    folder = tmp_path / "iter_4"
    shutil.copytree(checkpointed / "pristine" / "iter_4", folder)
    shard = folder / "sharded" / "__1_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="__1_0.distcp"):
        verify(folder)

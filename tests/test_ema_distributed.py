"""A checkpoint of a launched ``model_wrapper='separate'`` run with EMAHook resumes and
evaluates in one process: the average's names carry no DDP ``module.``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from ema_separate_script import build
from engine import Hook
from engine.checkpoint.find import read_engine_state
from engine.hooks.ema_hook import EMAHook

TESTS = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_separate_launch_checkpoint_resumes_in_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for key in [k for k in env if k.startswith("ACCELERATE_")]:
        del env[key]
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
        "2", "--main_process_port", str(_free_port()), str(TESTS / "ema_separate_script.py"),
        str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert "PASS ema_separate processes=2" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-4000:]

    folder = tmp_path / "epoch_1"
    saved = read_engine_state(folder)["ema_state_dict"]
    weights = load_file(str(folder / "model.safetensors"))
    plain = sorted(weights)  # the model's own names, e.g. generator.0.weight
    # The averaged model's names are the plain model's under `module.` (its attribute), never
    # DDP's `generator.module.0.weight`; its module.* entries hold the live weights.
    assert not any("module." in k for k in plain)
    assert sorted(saved) == sorted(["steps", *(f"module.{k}" for k in plain)]), sorted(saved)
    assert any(not torch.equal(weights[k], saved[f"module.{k}"]) for k in plain)

    seen = {}

    class AtStart(Hook):
        def before_train_epoch(self, runner):
            if not seen:  # the first epoch start after resuming, before any update
                seen["live"] = {k: v.clone() for k, v in runner.model.state_dict().items()}
                average = runner.hooks.get(EMAHook).ema_model.state_dict()
                seen["average"] = {k: v.clone() for k, v in average.items()}

    resumed = build(
        tmp_path, max_epochs=2, resume=True, custom_hooks=[EMAHook(momentum=0.1), AtStart()]
    )
    resumed.train()  # one process, no DDP: the launched run's names load strictly
    for name in plain:  # live weights back in the model, the average back in the hook
        assert torch.equal(seen["live"][name], saved[f"module.{name}"]), name
        assert torch.equal(seen["average"][f"module.{name}"], weights[name])
    assert seen["average"]["steps"].item() == saved["steps"].item() > 0
    assert resumed.state.epoch == 2

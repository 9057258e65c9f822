"""The recipes, run for real as a user runs them: subprocesses, tiny budgets, CPU only."""

import ast
import dataclasses
import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import engine.config
from engine.config import OptimConfig, RunConfig
from run_files import run_file

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "recipes" / "train.py"
TOY = ROOT / "recipes" / "toy.py"


def run(args, cwd=ROOT, env=None, timeout=180):
    # Wide --help (no wrapped lines); one thread per process, as torchrun sets: tiny models
    # gain nothing from more, and spin-waiting threads slow a shared machine to a crawl.
    env = {"OMP_NUM_THREADS": "1", **os.environ, "COLUMNS": "1000", **(env or {})}
    for key in [k for k in env if k.startswith("ACCELERATE_") and k != "ACCELERATE_USE_CPU"]:
        del env[key]  # a developer's accelerate settings must not change the test
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def records(work_dir, mode):
    lines = run_file(work_dir, "scalars.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["mode"] == mode]


def field_docstrings(source, name):
    """{field: docstring} of class `name` in `source`: the string under each field, as tyro reads it."""
    (cls,) = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == name]
    return {
        a.target.id: b.value.value
        for a, b in zip(cls.body, cls.body[1:])
        if isinstance(a, ast.AnnAssign)
        and isinstance(b, ast.Expr)
        and isinstance(b.value.value, str)
    }


def test_toy_recipe_trains_the_seed_model(tmp_path):
    run([sys.executable, str(TOY)], cwd=tmp_path)  # writes work_dirs/toy under the cwd
    losses = [r["loss"] for r in records(tmp_path / "work_dirs" / "toy", "train")]
    assert len(losses) == 10 and losses[-1] < 0.05  # 2 logs x 5 epochs; feat -> label = 1


def test_train_recipe_trains_writes_its_config_and_resumes_exactly(tmp_path):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    out = run([sys.executable, str(TRAIN), "--max-epochs", "2", "--work-dir", str(full)])
    config = json.loads(run_file(full, "config.json").read_text())
    assert config["run"] == {**config["run"], "max_epochs": 2, "work_dir": str(full)}
    assert config["optim"]["optimizer"] == "AdamW" and config["batch_size"] == 32
    val = records(full, "val")
    assert len(val) == 2 and val[-1]["accuracy/top1"] >= 90.0  # ~99% after two epochs
    assert f"final validation accuracy: {val[-1]['accuracy/top1']:.2f}%" in out

    # Resume from the first epoch's checkpoint in a fresh work_dir: the second epoch must
    # come out exactly as in the uninterrupted run (data order, lr, weights, RNG).
    shutil.copytree(full / "epoch_1", resumed / "epoch_1")
    (resumed / "last_checkpoint").write_text("epoch_1")
    run([sys.executable, str(TRAIN), "--max-epochs", "2", "--work-dir", str(resumed), "--resume"])
    epoch_2 = [
        [(r["iter"], r["lr"], r["loss"]) for r in records(d, "train") if r["epoch"] == 2]
        for d in (full, resumed)
    ]
    assert epoch_2[0] and epoch_2[1] == epoch_2[0]
    assert records(resumed, "val")[-1]["accuracy/top1"] == val[-1]["accuracy/top1"]


def test_train_recipe_help_lists_every_flag_with_its_docstring():
    out = " ".join(run([sys.executable, str(TRAIN), "--help"]).split())
    config_source = inspect.getsource(engine.config)
    docs = {
        **field_docstrings(TRAIN.read_text(), "Config"),
        **field_docstrings(config_source, "RunConfig"),
        **field_docstrings(config_source, "OptimConfig"),
        **field_docstrings(config_source, "CheckpointConfig"),
        **field_docstrings(config_source, "ExtrasConfig"),
    }
    assert len(docs) == 6 + 14 + 8 + 4 + 2  # recipe, RunConfig, OptimConfig and the groups
    assert "--config FILE" in out and "--print-config" in out
    for name, doc in docs.items():
        assert f"--{name.replace('_', '-')}" in out, name
        assert " ".join(doc.split()) in out, name


def test_config_checks_and_translation():
    optim = OptimConfig("SGD", lr=0.1, clip_grad_norm=5.0, accumulative_counts=2)
    assert optim.to_mmengine() == dict(
        optimizer=dict(type="SGD", lr=0.1, weight_decay=0.0, momentum=0.9),
        accumulative_counts=2,
        clip_grad=dict(max_norm=5.0),
    )
    assert OptimConfig("AdamW").to_mmengine()["optimizer"]["betas"] == (0.9, 0.999)
    assert OptimConfig(lr_schedule="cosine").param_scheduler()[0]["type"] == "CosineAnnealingLR"
    kwargs = RunConfig(work_dir="w", max_epochs=3, seed=1).runner_kwargs()
    assert kwargs["train_cfg"] == dict(by_epoch=True, max_epochs=3, val_interval=1)
    assert kwargs["randomness"] == dict(seed=1)
    for bad in (
        dict(lr=0),
        dict(momentum=1.0),
        dict(accumulative_counts=0),
        dict(clip_grad_norm=0.0),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            OptimConfig(**bad)
    with pytest.raises(ValueError, match="max_epochs"):
        RunConfig(max_epochs=0)
    assert dataclasses.asdict(RunConfig()) == json.loads(
        json.dumps(dataclasses.asdict(RunConfig()))
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_train_recipe_under_accelerate_launch_with_two_processes(tmp_path):
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launch += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "--main_process_port", str(free_port())]  # not 29500:
    # other test runs on this machine may hold the default port
    args = [str(TRAIN), "--max-epochs", "1", "--work-dir", str(tmp_path)]
    out = run(launch + args, env={"ACCELERATE_USE_CPU": "true"})
    assert out.count("final validation accuracy") == 1  # printed by the main process only
    (val,) = records(tmp_path, "val")  # written once, by the main process
    assert val["accuracy/top1"] > 50.0  # 23 updates of a global batch of 64: ~66%
    assert val["iter"] == 23  # 1437 samples / (2 x 32), rounded up

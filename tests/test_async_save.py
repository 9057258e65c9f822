"""``CheckpointHook(async_save=True)``: the checkpoints of synchronous saves, written by a thread
while training goes on (engine.checkpoint.async_writer)."""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DistributedType
from torch import nn

import engine.checkpoint.async_writer as async_writer
import engine.checkpoint.checkpoint_files
from engine import CheckpointError, CheckpointHook, Hook
from engine.checkpoint.manifest import verify

SCRIPT = Path(__file__).parent / "async_save_script.py"
spec = importlib.util.spec_from_file_location("async_save_script", SCRIPT)
script = importlib.util.module_from_spec(spec)
sys.modules["async_save_script"] = script
spec.loader.exec_module(script)
build, checkpoints = script.build, script.checkpoints


def _fresh_accelerate() -> None:
    """Accelerate's process-wide state, reset between two runs in one test."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _weights(runner) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in runner._raw_model.state_dict().items()}


def _train(*args, **kwargs):
    runner = build(*args, **kwargs)
    runner.train()
    _fresh_accelerate()
    return runner


def _assert_equal_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The final weights of an uninterrupted run with synchronous saves."""
    runner = _train(tmp_path_factory.mktemp("reference"), False)
    return _weights(runner)


def test_async_saves_write_what_sync_saves_write_and_resume_the_same(tmp_path, reference):
    sync, background = tmp_path / "sync", tmp_path / "async"
    runs = {run: _train(run, run is background) for run in (sync, background)}
    for run, runner in runs.items():
        _assert_equal_weights(_weights(runner), reference)
        # MMEngine's message-hub keys name the folders once they are published
        hub = runner.message_hub
        assert hub.get_info("last_ckpt") == str(run / "iter_12")
        assert hub.get_info("best_ckpt") == str(run / "best_accuracy_top1")
    names = checkpoints(sync)
    assert names == checkpoints(background)
    assert {"iter_8", "iter_12"} <= set(names) and "iter_4" not in names  # two kept
    assert any(name.startswith("best_") for name in names)
    for name in names:
        assert script.same_contents(
            script.folder_contents(sync / name), script.folder_contents(background / name)
        ), name
    assert (background / "last_checkpoint").read_text() == "iter_12\n"
    assert not [p for p in background.iterdir() if p.name.startswith((".tmp_", ".old_"))]

    # Resuming from either iter_8 ends with the uninterrupted run's weights, bit for bit.
    for run in (sync, background):
        resumed = _train(tmp_path / f"resumed_{run.name}", True, resume=str(run / "iter_8"))
        assert resumed.state.iter == script.MAX_ITERS
        _assert_equal_weights(_weights(resumed), reference)


class _Progress(Hook):
    """Sets an event when training has finished each iteration."""

    def __init__(self) -> None:
        self.done: dict[int, threading.Event] = {}

    def event(self, n: int) -> threading.Event:
        return self.done.setdefault(n, threading.Event())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.event(runner.state.iter).set()


def test_training_goes_on_while_one_save_at_a_time_is_written(tmp_path, monkeypatch):
    """The writer of iter_n holds its write until training has finished iteration n + 1
    (a synchronous save would wait for ever); no two writes overlap; the checkpoint beyond
    max_keep_ckpts is removed only once the newer one is published."""
    progress, lock = _Progress(), threading.Lock()
    writing, most, seen, went_on = 0, 0, {}, {}
    real = async_writer.write_files

    def held(files):
        nonlocal writing, most
        with lock:
            writing += 1
            most = max(most, writing)
        seen[files.name] = checkpoints(tmp_path)
        n = int(files.name.split("_")[1])
        if n < script.MAX_ITERS:
            went_on[files.name] = progress.event(n + 1).wait(timeout=20)
        real(files)
        with lock:
            writing -= 1

    monkeypatch.setattr(async_writer, "write_files", held)
    runner = _train(tmp_path, True, save_best=None, custom_hooks=[progress])
    assert went_on == {"iter_4": True, "iter_8": True}
    assert most == 1
    # iter_4 goes when iter_12 is published (at the end), as with synchronous saves
    assert seen == {"iter_4": [], "iter_8": ["iter_4"], "iter_12": ["iter_4", "iter_8"]}
    assert checkpoints(tmp_path) == ["iter_12", "iter_8"]
    assert runner.state.iter == script.MAX_ITERS


def _fail_optimizer_write(monkeypatch, name: str, error: Exception) -> None:
    real = engine.checkpoint.checkpoint_files._write_optimizer

    def failing(folder, state):
        if folder.name == f".tmp_{name}":
            raise error
        real(folder, state)

    monkeypatch.setattr(engine.checkpoint.checkpoint_files, "_write_optimizer", failing)


@pytest.mark.parametrize(
    "failing, error, message, raised_at",
    [
        (
            "iter_8",
            RuntimeError("injected failure\nsecond line"),
            r"^writing checkpoint 'iter_8' in the background failed \(RuntimeError: injected "
            r"failure\); the previous checkpoint is intact$",
            12,  # at the next save
        ),
        (
            "iter_12",
            OSError(errno.ENOSPC, "No space left on device"),
            r"^saving checkpoint 'iter_12' failed at .*: no space left on the device .*; the "
            r"previous checkpoint is intact$",
            12,  # at the end of training
        ),
    ],
)
def test_a_failed_background_write_raises_one_line_and_the_previous_checkpoint_resumes(
    tmp_path, monkeypatch, reference, failing, error, message, raised_at
):
    _fail_optimizer_write(monkeypatch, failing, error)
    runner = build(tmp_path, True, save_best=None)
    with pytest.raises(CheckpointError, match=message) as raised:
        runner.train()
    _fresh_accelerate()
    assert "\n" not in str(raised.value) and raised.value.__cause__ is error
    assert runner.state.iter == raised_at
    previous = f"iter_{int(failing.split('_')[1]) - script.INTERVAL}"
    assert (tmp_path / "last_checkpoint").read_text() == f"{previous}\n"
    assert checkpoints(tmp_path)[-1] == previous and not (tmp_path / failing).exists()
    assert not (tmp_path / f".tmp_{failing}").exists()
    verify(tmp_path / previous)
    monkeypatch.undo()
    resumed = _train(tmp_path, True, resume=True, save_best=None)
    _assert_equal_weights(_weights(resumed), reference)


def test_a_process_killed_while_the_writer_writes_keeps_the_previous_checkpoint(
    tmp_path, reference
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "kill", str(tmp_path), "iter_8"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (tmp_path / ".tmp_iter_8" / "model.safetensors").is_file()  # killed mid-write
    assert not (tmp_path / "iter_8").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "iter_4\n"
    verify(tmp_path / "iter_4")
    resumed = _train(tmp_path, True, resume=True)
    assert not (tmp_path / ".tmp_iter_8").exists()  # the leftover is cleaned on resume
    _assert_equal_weights(_weights(resumed), reference)


class _Boom(Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.state.iter == script.INTERVAL + 1:
            raise ValueError("boom")


def test_an_exception_in_training_waits_for_the_save_in_flight(tmp_path, monkeypatch):
    real = async_writer.write_files

    def slow(files):
        time.sleep(1.0)  # still writing when the exception ends training
        real(files)

    monkeypatch.setattr(async_writer, "write_files", slow)
    runner = build(tmp_path, True, save_best=None, custom_hooks=[_Boom()])
    with pytest.raises(ValueError, match="boom"):
        runner.train()
    _fresh_accelerate()
    assert not any(t.name.startswith("engine-save-") for t in threading.enumerate())
    verify(tmp_path / "iter_4")  # published before train() returned
    assert (tmp_path / "last_checkpoint").read_text() == "iter_4\n"
    assert not (tmp_path / ".tmp_iter_4").exists()


def test_the_copy_keeps_tied_tensors_tied_outlives_updates_and_reuses_its_buffers():
    buffers = async_writer.StagingBuffers()
    w, step = torch.randn(4, 4), torch.tensor(3.0)
    before = w.clone()
    state = {"w": w, "tied": w, "t": w.t(), "state": {0: {"step": step}}, "lr": (0.1, "x")}
    first = buffers.copy(state)
    w.add_(1.0)
    step.add_(1.0)  # training goes on, in place
    assert first["w"] is first["tied"] and first["w"] is not first["t"]
    assert torch.equal(first["w"], before) and torch.equal(first["t"], before.t())
    assert first["state"][0]["step"].item() == 3.0 and first["lr"] == (0.1, "x")
    ptrs = {first[k].data_ptr() for k in ("w", "t")}
    buffers.release()  # the save is written: its buffers serve the next one
    second = buffers.copy(state)
    assert {second[k].data_ptr() for k in ("w", "t")} == ptrs
    assert torch.equal(second["w"], w) and second["state"][0]["step"].item() == 4.0


def test_async_save_must_be_a_bool():
    with pytest.raises(
        TypeError, match=r"^CheckpointHook async_save must be True or False, got 'yes'$"
    ):
        CheckpointHook(async_save="yes")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_rank_group():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_a_sharded_model_is_refused_before_training_with_what_to_use(tmp_path, one_rank_group):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, distribute_tensor

    model = nn.Linear(2, 2)
    mesh = init_device_mesh("cpu", (1,))
    model.weight = nn.Parameter(distribute_tensor(model.weight.detach(), mesh, [Replicate()]))
    runner = SimpleNamespace(
        work_dir=tmp_path,
        accelerator=SimpleNamespace(distributed_type=DistributedType.NO),
        _raw_model=model,
        state=SimpleNamespace(max_epochs=1, iter=0),
    )
    CheckpointHook(async_save=False).before_train(runner)  # sharded saves work synchronously
    with pytest.raises(CheckpointError, match=r"sharded .*; use async_save=False") as raised:
        CheckpointHook(async_save=True).before_train(runner)
    assert "\n" not in str(raised.value)


def test_two_processes_write_the_same_checkpoints_and_both_raise_a_failed_write(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", ACCELERATE_USE_CPU="true")
    launch = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    proc = subprocess.run(
        [sys.executable, *launch, "--main_process_port", str(_port()), str(SCRIPT), "dist",
         str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "PASS dist processes=2" in proc.stdout, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

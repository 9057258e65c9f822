"""Surviving failures: SIGTERM/SIGINT stop with a checkpoint, non-finite losses stop or skip."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from engine import BaseModel, CheckpointHook, Hook, LoggerHook, Runner, run_loop
from engine.checkpoint.save import find_latest_checkpoint
from engine.hooks.nan_guard_hook import NanGuardHook
from engine.hooks.signal_hook import SignalHook
from run_files import without_run_folders

SCRIPT = Path(__file__).with_name("failure_script.py")


class Linear(BaseModel):
    """loss = mean((w·x + b - y)^2) (+ an optional constant ``loss_aux``, which has no gradient)."""

    def __init__(self, aux: float | None = None) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)
        self.aux = aux

    def forward(self, x, y, mode="tensor"):
        out = self.net(x)
        if mode == "loss":
            losses = {"loss": (out - y).pow(2).mean()}
            if self.aux is not None:
                losses["loss_aux"] = torch.tensor(self.aux)
            return losses
        return out


def data(n: int = 24, nan_at: tuple[int, ...] = ()) -> list:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    x[list(nan_at)] = float("nan")
    return list(zip(x, y))


def runner(work_dir, dataset, max_iters, *, acc=1, optimizer=None, hooks=(), **kwargs) -> Runner:
    """Batches of one sample, SGD with momentum; `max_iters` may be ``("epochs", n)``."""
    torch.manual_seed(0)
    kwargs.setdefault("default_hooks", dict(logger=None))
    by_epoch = isinstance(max_iters, tuple)
    limit = dict(max_epochs=max_iters[1]) if by_epoch else dict(max_iters=max_iters)
    return Runner(
        model=kwargs.pop("model", None) or Linear(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=dataset, batch_size=1, shuffle=by_epoch),
        train_cfg=dict(by_epoch=by_epoch, **limit),
        optim_wrapper=dict(
            optimizer=optimizer or dict(type="SGD", lr=0.05, momentum=0.9),
            accumulative_counts=acc,
        ),
        custom_hooks=list(hooks),
        **kwargs,
    )


def weights(r: Runner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in r._raw_model.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), (a, b)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


class SendSignal(Hook):
    """Sends this process `sig` after each iteration in `at` (runs before SignalHook)."""

    def __init__(self, sig: int, *at: int) -> None:
        self.sig, self.at = sig, at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        for _ in range(self.at.count(runner.state.iter)):  # iterations done
            os.kill(os.getpid(), self.sig)


# -- signals -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sig", "limit", "at", "stop"),
    [
        (signal.SIGTERM, 20, 4, 6),  # iteration 4 is inside the window 4-6: stop after 6
        (signal.SIGINT, ("epochs", 2), 16, 18),  # epoch 2 of 12 shuffled batches, mid-epoch
    ],
)
def test_signal_saves_at_the_window_end_and_resume_continues_exactly(
    tmp_path, sig, limit, at, stop
):
    before = signal.getsignal(sig)
    dataset = data(12)
    stopped = runner(tmp_path / "run", dataset, limit, acc=3, hooks=[SendSignal(sig, at)])
    assert stopped.train() == {}
    assert (stopped.state.iter, stopped.state.step, stopped.state.should_stop) == (
        stop,
        stop // 3,
        True,
    )
    assert find_latest_checkpoint(tmp_path / "run").name == f"iter_{stop}"
    assert signal.getsignal(sig) is before  # the previous handler is back

    resumed = runner(tmp_path / "run", dataset, limit, acc=3, resume=True)
    resumed.train()
    full = runner(tmp_path / "full", dataset, limit, acc=3)
    full.train()
    assert resumed.state.iter == full.state.iter and not resumed.state.should_stop
    assert_same(weights(resumed), weights(full))


def test_checkpoint_joins_retention_and_a_due_save_is_not_repeated(tmp_path):
    saves = []

    class CountSaves(Hook):
        def before_save_checkpoint(self, runner, checkpoint):
            saves.append(runner.state.iter)

    hook = CheckpointHook(interval=3, by_epoch=False, max_keep_ckpts=2)
    signals = SendSignal(signal.SIGTERM, 5, 9)  # 9: a save is due there anyway
    hooks = dict(logger=None, checkpoint=hook)
    r = runner(tmp_path, data(), 20, hooks=[signals, CountSaves()], default_hooks=hooks)
    r.train()
    assert (r.state.iter, saves, hook.kept) == (5, [3, 5], ["iter_3", "iter_5"])
    r.train()  # continues; at 9 the periodic save comes first and the signal's is skipped
    assert (r.state.iter, saves, hook.kept) == (9, [3, 5, 6, 9], ["iter_6", "iter_9"])
    assert without_run_folders(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "iter_6",
        "iter_9",
    ]


def test_second_signal_aborts_at_once(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    r = runner(tmp_path, data(), 20, acc=4, hooks=[SendSignal(signal.SIGINT, 2, 2)])
    with pytest.raises(KeyboardInterrupt):
        r.train()
    assert r.state.iter == 2 and not r.state.should_stop
    assert signal.getsignal(signal.SIGINT) is before
    # nothing saved, nothing partial
    assert not without_run_folders(p.name for p in tmp_path.iterdir() if p.is_dir())


def test_without_work_dir_it_just_stops_and_train_again_continues():
    sgd = dict(optimizer=dict(type="SGD", lr=0.01))
    state = run_loop(Linear(), data(), sgd, max_iters=10, hooks=[SendSignal(signal.SIGINT, 3)])
    assert (state.iter, state.should_stop) == (3, True)

    model = Linear()
    r = Runner(
        model=model,
        work_dir=None,
        train_dataloader=data(),
        train_cfg=dict(by_epoch=False, max_iters=10),
        optim_wrapper=torch.optim.SGD(model.parameters(), lr=0.01),
        default_hooks=dict(logger=None),
        custom_hooks=[SendSignal(signal.SIGINT, 3)],
    )
    r.train()
    assert (r.state.iter, r.state.should_stop) == (3, True)
    r.train()  # the signal was dealt with: a new train() continues the run
    assert (r.state.iter, r.state.should_stop) == (10, False)


def test_handlers_are_restored_when_training_fails(tmp_path):
    class Boom(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            raise RuntimeError("boom")

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError, match="boom"):
        runner(tmp_path, data(), 5, hooks=[Boom()]).train()
    assert signal.getsignal(signal.SIGTERM) is before


def test_outside_the_main_thread_no_handler_is_installed(tmp_path):
    errors, r = [], runner(tmp_path, data(), 3)
    thread = threading.Thread(target=lambda: errors.append(r.train()))
    thread.start()
    thread.join()
    assert errors == [{}] and r.state.iter == 3


def test_signal_hook_arguments_are_checked():
    with pytest.raises(ValueError, match="SIGTERM"):
        SignalHook(signals=("SIGTERMINATE",))
    with pytest.raises(ValueError, match="sync_interval must be an int >= 1"):
        SignalHook(sync_interval=0)


def test_sigterm_from_outside_exits_0_with_a_checkpoint(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(tmp_path), "wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("READY"):
            proc.send_signal(signal.SIGTERM)
            break
    out = "".join(lines) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    last = [line for line in out.splitlines() if line.startswith("STOPPED")][-1]
    stopped_at = int(last.split("iter=")[1].split()[0])
    assert stopped_at % 2 == 0 and "should_stop=True" in last, out  # a window end (acc=2)
    assert find_latest_checkpoint(tmp_path).name == f"iter_{stopped_at}"
    assert "Received SIGTERM" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_processes_agree_on_where_to_stop(tmp_path):
    """Rank 0 gets SIGTERM after iteration 3, rank 1 after 7. Votes follow updates 2, 4, 6...
    (every 2nd update; acc=2, so iterations 4, 8, ...); rank 0's flag enters the vote at
    iteration 4, whose result is read at iteration 8: both stop there, with one checkpoint.
    The same processes then check that a NaN on one process stops both."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for key in [k for k in env if k.startswith("ACCELERATE_")]:
        del env[key]
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--main_process_port", str(_free_port()), str(SCRIPT), str(tmp_path), "vote",
    ]  # fmt: skip
    proc = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    report = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, report
    assert "STOPPED rank=0 iter=8 should_stop=True" in proc.stdout, report
    assert "STOPPED rank=1 iter=8 should_stop=True" in proc.stdout, report
    assert find_latest_checkpoint(tmp_path).name == "iter_8"
    # Then a NaN loss on rank 1 only, in iteration 3: both processes stop at the check.
    raised = "RAISED rank={} iter=4 nan_policy='stop': non-finite {} in iterations 1-4;"
    assert raised.format(1, "['loss', 'loss_aux']") in proc.stdout, report
    # The logged losses are the processes' mean: rank 0 sees rank 1's NaN in them too.
    assert raised.format(0, "['loss', 'loss_aux']") in proc.stdout, report


# -- non-finite losses ---------------------------------------------------------------------
def test_stop_at_the_log_interval_names_window_and_keys(tmp_path):
    hooks = dict(logger=LoggerHook(interval=4), checkpoint=CheckpointHook(5, by_epoch=False))
    r = runner(tmp_path, data(nan_at=(5,)), 20, default_hooks=hooks)  # the 6th iteration
    with pytest.raises(FloatingPointError) as err:
        r.train()
    message = one_line(err)
    assert "nan_policy='stop': non-finite ['loss'] in iterations 5-8" in message
    assert "latest checkpoint stays iter_5" in message and "nan_policy='skip'" in message
    assert r.state.iter == 8
    # Nothing after the NaN: iter_5 is the last checkpoint, and it is the clean run's.
    assert without_run_folders(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["iter_5"]
    clean = runner(tmp_path / "clean", data(), 5, default_hooks=dict(logger=None, checkpoint=None))
    clean.train()
    assert_same(load_file(tmp_path / "iter_5" / "model.safetensors"), weights(clean))


def test_a_save_between_checks_refuses_non_finite_weights(tmp_path):
    hooks = dict(logger=None, checkpoint=CheckpointHook(2, by_epoch=False))
    r = runner(tmp_path, data(nan_at=(4,)), 20, default_hooks=hooks)  # NaN in iteration 5
    with pytest.raises(FloatingPointError) as err:
        r.train()
    message = one_line(err)
    assert "weights hold NaN/inf at iteration 6" in message
    assert "latest checkpoint stays iter_4" in message
    assert find_latest_checkpoint(tmp_path).name == "iter_4"
    assert without_run_folders(p.name for p in tmp_path.iterdir()) == [
        "iter_2",
        "iter_4",
        "last_checkpoint",
    ]


def test_stop_without_logger_checks_at_epoch_end_before_the_epoch_checkpoint(tmp_path):
    # loss_aux is NaN but has no gradient: the weights stay finite, only the loss tells.
    r = Runner(
        model=Linear(aux=float("nan")),
        work_dir=tmp_path,
        train_dataloader=dict(dataset=data(6), batch_size=2),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
        default_hooks=dict(logger=None),
    )
    with pytest.raises(FloatingPointError) as err:
        r.train()
    assert "non-finite ['loss', 'loss_aux'] in iterations 1-3 (epoch 1)" in one_line(err)
    assert find_latest_checkpoint(tmp_path) is None


def test_stop_without_logger_checks_every_interval_iterations(tmp_path):
    r = runner(tmp_path, data(), 20, model=Linear(aux=float("inf")))
    r.hooks.get(NanGuardHook).interval = 5
    with pytest.raises(FloatingPointError) as err:
        r.train()
    assert "non-finite ['loss', 'loss_aux'] in iterations 1-5;" in one_line(err)
    assert r.state.iter == 5 and find_latest_checkpoint(tmp_path) is None


def optimizers():
    return {
        "fused SGD": dict(type="SGD", lr=0.05, momentum=0.9, weight_decay=0.01),
        "fused AdamW": dict(type="AdamW", lr=0.05),
        "Adam for-loop": dict(type="Adam", lr=0.05, foreach=False),  # no found_inf: host read
        "RMSprop": dict(type="RMSprop", lr=0.01, momentum=0.5),
    }


@pytest.mark.parametrize("name", list(optimizers()))
@pytest.mark.parametrize(("nan_at", "acc"), [((5,), 1), ((0,), 1), ((6, 7), 2)])
def test_skip_equals_a_run_without_the_bad_batches(tmp_path, name, nan_at, acc, engine_log):
    """Index 0 is the first update: fused SGD's momentum buffers do not exist yet."""
    optimizer = optimizers()[name]
    n, iters = 16, 12
    bad = runner(
        tmp_path / "a", data(n, nan_at), iters, acc=acc, optimizer=optimizer, nan_policy="skip"
    )
    bad.train()
    kept = [s for i, s in enumerate(data(n)) if i not in nan_at]
    ref = runner(tmp_path / "b", kept, iters - len(nan_at), acc=acc, optimizer=optimizer)
    ref.train()
    assert_same(weights(bad), weights(ref))
    assert bad.hooks.get(NanGuardHook).skipped == 1
    assert any(
        "skipped 1 update(s) with non-finite gradients in iterations 1-10" in m for m in engine_log
    )
    assert load_file(find_latest_checkpoint(tmp_path / "a") / "model.safetensors").keys()


def test_skip_reads_nothing_back_per_update_with_fused_optimizers(tmp_path, monkeypatch):
    r = runner(
        tmp_path,
        data(24, nan_at=(3, 9)),
        20,
        optimizer=dict(type="AdamW", lr=0.01),
        nan_policy="skip",
        default_hooks=dict(logger=LoggerHook(interval=10), checkpoint=None),
    )
    reads, at = [], {"iter": 0}

    class Clock(Hook):
        priority = "HIGHEST"

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            at["iter"] = runner.state.iter + 1

    r.hooks.add(Clock())
    for name in ("item", "tolist", "__bool__", "__float__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            if sys._getframe(1).f_code.co_filename.endswith("nan_guard.py"):
                reads.append(at["iter"])
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    r.train()
    monkeypatch.undo()
    assert set(reads) <= {10, 20}, reads  # the skipped count, read at the log intervals
    assert r.hooks.get(NanGuardHook).skipped == 2


def test_ignore_lets_the_nan_through(tmp_path):
    r = runner(
        tmp_path,
        data(nan_at=(2,)),
        6,
        nan_policy="ignore",
        default_hooks=dict(logger=None, checkpoint=None),
    )
    r.train()
    assert r.hooks.get(NanGuardHook) is None
    assert torch.isnan(r._raw_model.net.weight).all()

"""`SignalHook`: on SIGTERM or SIGINT, save a checkpoint at the next safe point and stop.

Preemptible clusters send SIGTERM, then SIGKILL after a grace period; Ctrl-C sends SIGINT.
`Runner.train()` installs the handlers (from the main thread only: Python allows no other)
through `handling_signals`, and puts the previous handlers back when training ends,
normally or by an exception. A handler only records the signal. The hook acts on it after
the iteration that ends the current accumulation window, where the gradients are zero and
a checkpoint resumes exactly: it saves ``iter_<n>`` (when the run has a work_dir) and sets
``state.should_stop``. The loop returns, ``Runner.train()`` returns, and a script that ends
there exits with code 0; ``hook.received`` holds the signal for a script that wants
another exit code (e.g. ``sys.exit(128 + hook.received)``). Resuming with ``resume=True``
continues the run (`engine.runner.resume` clears ``should_stop``); calling ``train()`` again in
the same process continues it too.

A second signal before training has returned aborts at once, as if no handler had been
installed: SIGINT raises ``KeyboardInterrupt``, SIGTERM ends the process. A save cut short
that way leaves the previous checkpoint intact (saves are atomic).

Several processes: launchers (``accelerate launch``/torchrun, SLURM) send the signal to
every process, but each receives it at its own point of the loop, and a process that
stopped alone would leave the others waiting in a collective forever. So the processes
vote: after every ``sync_interval``-th optimizer update each one adds its flag into an
all-reduce that is queued on the device without waiting for it, and reads the sum at the
next vote. Every process thus stops after the same iteration, at most ``2 * sync_interval``
updates after the signal, with no host sync and no collective on the other iterations.
A single process needs no vote and stops at the end of the current window. Launchers
wait a grace period before SIGKILL (torchrun: 30 s; SLURM: its KillWait): choose
``sync_interval`` so that ``2 * sync_interval`` updates and a save fit in it. (torchrun
itself then exits non-zero, having been signalled; the training processes exit 0.)

Example:
    >>> Runner(..., default_hooks=dict(signal=SignalHook(sync_interval=2)))
    >>> Runner(..., default_hooks=dict(signal=None))   # keep Python's default handlers
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from engine.checkpoint.save import at_window_end, save_checkpoint
from engine.hooks.checkpoint_hook import CheckpointHook
from engine.hooks.hook import Hook

logger = logging.getLogger("engine")


class SignalHook(Hook):
    """Save a checkpoint and stop training cleanly when the process gets a signal.

    Args:
        signals: the signals to catch, by name (``'SIGTERM'``) or number.
        sync_interval: in multi-process runs, vote on stopping every this many optimizer
            updates (see the module docstring); unused with one process.
    """

    priority = "LOWEST"  # after CheckpointHook: a periodic save due at this iteration comes first

    def __init__(
        self, signals: Iterable[str | int] = ("SIGTERM", "SIGINT"), sync_interval: int = 5
    ) -> None:
        if (
            isinstance(sync_interval, bool)
            or not isinstance(sync_interval, int)
            or sync_interval < 1
        ):
            raise ValueError(f"SignalHook sync_interval must be an int >= 1, got {sync_interval!r}")
        if isinstance(signals, str | int):
            signals = (signals,)
        self.signals = tuple(_signal(s) for s in signals)
        self.sync_interval = sync_interval
        self.received: int | None = None  # the signal being acted on
        self._stopped = False  # this hook stopped the run (so a new train() continues it)
        self._previous: dict[signal.Signals, Any] = {}
        self._vote: _Vote | None = None
        self._last_step = -1

    # -- handlers -------------------------------------------------------------------------
    def install(self) -> None:
        """Catch `signals` (main thread only; elsewhere Python refuses, and we skip)."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """Put back the handlers that `install` replaced."""
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            # Asked twice: the user wants out now. Re-send it to the handler we replaced
            # (SIGINT: KeyboardInterrupt; SIGTERM: the default, which ends the process).
            self.restore()
            signal.raise_signal(signum)
            return
        self.received = signum
        logger.warning(
            "Received %s: training stops after the current accumulation window (saving a "
            "checkpoint if there is a work_dir); send it again to abort at once",
            signal.Signals(signum).name,
        )

    # -- events ---------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        if self._stopped:  # train() again after a stop on a signal: continue the run
            runner.state.should_stop = False
            self.received, self._stopped = None, False
        acc = runner.accelerator
        self._vote = _Vote(acc) if acc is not None and acc.num_processes > 1 else None
        self._last_step = runner.state.step

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self._stopped:
            return
        if self._vote is None:  # one process: act at the first window end after the signal
            if self.received is not None and at_window_end(runner):
                self._stop(runner)
            return
        step = runner.state.step
        updated, self._last_step = step != self._last_step, step
        # Every process votes after the same updates, so they all decide at the same one.
        if updated and step % self.sync_interval == 0 and at_window_end(runner):
            if self._vote(self.received is not None):
                self._stop(runner)

    def _stop(self, runner) -> None:
        state = runner.state
        name = (
            signal.Signals(self.received).name if self.received else "a signal on another process"
        )
        self._stopped = True
        state.should_stop = True
        if getattr(runner, "work_dir", None) is None:
            logger.warning(
                "%s: stopping after iteration %d (no work_dir: nothing saved)", name, state.iter
            )
            return
        save_now(runner, f"iter_{state.iter}")
        logger.warning(
            "%s: saved a checkpoint of iteration %d in %s and stopped; resume=True continues",
            name, state.iter, runner.work_dir,
        )  # fmt: skip


def save_now(runner: Any, name: str) -> None:
    """Save `runner` as checkpoint `name` through its `CheckpointHook` when it has one, so
    the checkpoint joins that hook's retention list (``max_keep_ckpts``) and a point it has
    saved already is not saved twice; else with `engine.checkpoint.save.save_checkpoint`."""
    hook = runner.hooks.get(CheckpointHook)
    if hook is not None:
        hook.save(runner, name)
    else:
        save_checkpoint(runner, name)


@contextlib.contextmanager
def handling_signals(hooks: Iterable[Hook]) -> Iterator[None]:
    """Install every `SignalHook` of `hooks` for the block; restore the previous handlers
    when it ends, whether it returns or raises."""
    installed = [hook for hook in hooks if isinstance(hook, SignalHook)]
    try:
        for hook in installed:
            hook.install()
        yield
    finally:
        for hook in reversed(installed):
            hook.restore()


class _Vote:
    """Whether any process has asked to stop, agreed by all, read one vote late.

    Each call queues an all-reduce (sum) of this process's flag and returns the result of
    the previous call's. On a GPU the result is copied to pinned host memory behind the
    reduction, so reading it a vote later waits for nothing: the device finished it long
    ago. (Gloo on the CPU reduces synchronously; the processes meet at the same update.)
    """

    def __init__(self, accelerator: Any) -> None:
        self.accelerator = accelerator
        self._result: tuple[torch.Tensor, Any] | None = None

    def __call__(self, flag: bool) -> bool:
        decided = False
        if self._result is not None:
            host, event = self._result
            if event is not None:
                event.synchronize()
            decided = bool(host[0] > 0)
        device = self.accelerator.device
        # torch.full fills on the device: no host-to-device copy that would wait for it.
        vote = self.accelerator.reduce(torch.full((1,), float(flag), device=device), "sum")
        if vote.device.type == "cuda":
            host = torch.empty(1, pin_memory=True)
            host.copy_(vote, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._result = (host, event)
        else:
            self._result = (vote.cpu(), None)
        return decided


def _signal(value: str | int) -> signal.Signals:
    try:
        return signal.Signals[value] if isinstance(value, str) else signal.Signals(value)
    except (KeyError, ValueError):
        raise ValueError(
            f"SignalHook signal {value!r} is unknown; accepted: names such as 'SIGTERM', 'SIGINT', 'SIGUSR1' or their numbers"
        ) from None

"""Asynchronous checkpoint saves: the training thread copies the state, a thread writes it.

``CheckpointHook(async_save=True)`` passes an `AsyncWriter` to
`engine.checkpoint.save.save_checkpoint`. Everything that involves the other processes
(hooks' ``before_save_checkpoint``, gathering random states, creating the temporary folder,
agreeing that it worked) stays in the training thread, exactly as in a synchronous save.
The main process then copies the weights and optimizer state to CPU (into pinned buffers
where the tensors are on a GPU; the buffers are reused by the next save) and hands the copy
to a thread, which writes the files, the manifest last, and publishes the folder
(`engine.checkpoint.checkpoint_files.write_files`, `publish_files`). Training goes on meanwhile.

The guarantees of a synchronous save hold:

* **Atomic.** The thread writes into ``.tmp_<name>/`` and renames it; a process that dies
  mid-write leaves the previous checkpoint and ``last_checkpoint`` as they were.
* **One in flight.** `AsyncWriter.wait` blocks until the save in flight is published; the
  hook calls it before the next save, at the end of training, and `finish_on_exit` on an
  exception, so nothing is left half-written when the run ends.
* **Errors are raised, never swallowed.** `wait` runs on every process at the same point and
  raises the writer's error on all of them (one line; the partial folder is removed). On an
  exception that already ends training, the writer's own error is logged instead.

Sharded models (FSDP, DeepSpeed) are refused: torch's ``dcp.async_save`` would run
collectives from a background thread, which engine keeps to the training thread.

Example:
    >>> writer = AsyncWriter()
    >>> save_checkpoint(runner, "iter_4", writer=writer)   # returns once the state is copied
    >>> writer.wait(runner.accelerator)                    # "iter_4" once it is published
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint.checkpoint_files import CheckpointFiles, publish_files, write_files
from engine.checkpoint.disk_errors import is_disk_error
from engine.checkpoint.io import CheckpointError
from engine.checkpoint.publish import agree_or_raise
from engine.checkpoint.sharded_state import shard_layout

logger = logging.getLogger("engine")

_writers: weakref.WeakSet[AsyncWriter] = weakref.WeakSet()  # for `finish_on_exit`


class StagingBuffers:
    """CPU copies of state tensors, reused from one save to the next.

    Reusing them avoids allocating (and, on a GPU, pinning) a checkpoint's worth of memory
    at every save; it is safe because a save starts only once the previous one is written.
    """

    def __init__(self) -> None:
        self._free: dict[tuple, list[torch.Tensor]] = defaultdict(list)
        self._used: list[tuple[tuple, torch.Tensor]] = []

    def copy(self, value: Any, memo: dict | None = None) -> Any:
        """`value` with every tensor replaced by a CPU copy, containers rebuilt; tensors
        that are one view of one storage (tied weights) stay one tensor."""
        memo = {} if memo is None else memo
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if value.layout != torch.strided:  # sparse state (SparseAdam): a plain copy
                return value.to("cpu", copy=True)
            view = (
                value.device,
                value.untyped_storage().data_ptr(),
                value.storage_offset(),
                tuple(value.shape),
                value.stride(),
                value.dtype,
            )
            if view not in memo:
                memo[view] = self._copy_tensor(value)
            return memo[view]
        if isinstance(value, dict):  # an OrderedDict stays one: torch.save writes its type
            kind = OrderedDict if isinstance(value, OrderedDict) else dict
            return kind((k, self.copy(v, memo)) for k, v in value.items())
        if isinstance(value, list | tuple):
            items = [self.copy(v, memo) for v in value]
            return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
        return value  # numbers, strings, None: immutable

    def _copy_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        pin = tensor.device.type == "cuda"
        key = (tuple(tensor.shape), tensor.dtype, pin)
        free = self._free[key]
        buffer = free.pop() if free else torch.empty(key[0], dtype=tensor.dtype, pin_memory=pin)
        buffer.copy_(tensor, non_blocking=pin)  # synchronised once, in `stage`
        self._used.append((key, buffer))
        return buffer

    def release(self) -> None:
        """Make the last save's buffers available again (its files are written)."""
        for key, buffer in self._used:
            self._free[key].append(buffer)
        self._used.clear()

    def clear(self) -> None:
        """Free every buffer (training is over)."""
        self._free.clear()
        self._used.clear()

    def stage(self, files: CheckpointFiles) -> CheckpointFiles:
        """`files` with the weights and optimizer state copied; the engine-state tensors
        are copies already (`engine.checkpoint.io.encode`)."""
        memo: dict = {}
        staged = replace(
            files, model=self.copy(files.model, memo), optimizer=self.copy(files.optimizer, memo)
        )
        if any(key[2] for key, _ in self._used) and torch.cuda.is_available():
            torch.cuda.synchronize()  # the non-blocking device-to-host copies have landed
        return staged


class AsyncWriter:
    """Writes one checkpoint at a time in a background thread (see the module docstring).

    Attributes:
        last_copy_seconds: how long the last `submit` took to copy the state (main process).
        last_write_seconds: how long the thread took to write and publish the last save.
    """

    def __init__(self) -> None:
        self._buffers = StagingBuffers()
        self._thread: threading.Thread | None = None
        self._pending: tuple[Path, str] | None = None  # (work_dir, name) of the save in flight
        self._error: Exception | None = None
        self.last_copy_seconds = 0.0
        self.last_write_seconds = 0.0
        _writers.add(self)

    @property
    def in_flight(self) -> str | None:
        """The name of the checkpoint being written, None when idle."""
        return None if self._pending is None else self._pending[1]

    def check(self, model: torch.nn.Module) -> None:
        """Refuse what cannot be saved in the background, with a one-line reason."""
        if shard_layout(model) is not None:
            raise CheckpointError(
                "CheckpointHook(async_save=True) cannot save a sharded (FSDP, DeepSpeed) model: "
                "its shards are written by collectives, which stay in the training thread; use "
                "async_save=False (every process then writes its own shards at once)"
            )

    def submit(self, acc: Any, work_dir: Path, name: str, files: CheckpointFiles | None) -> None:
        """Start writing checkpoint `name` (call on every process, with `files` on the main
        one): the main process copies the state, then a thread writes and publishes it.

        Raises:
            RuntimeError: a save is still in flight (`wait` for it first).
        """
        if self._pending is not None:
            raise RuntimeError(
                f"checkpoint {self._pending[1]!r} is still being written; call wait() before "
                f"saving {name!r} (one save in flight at a time)"
            )
        self._pending = (Path(work_dir), name)
        if not acc.is_main_process:
            return  # the main process writes the whole (unsharded) checkpoint
        start = time.perf_counter()
        try:
            staged = self._buffers.stage(files)
        except BaseException:
            self._pending = None
            self._buffers.release()
            raise
        self.last_copy_seconds = time.perf_counter() - start
        self._thread = threading.Thread(
            target=self._write, args=(staged,), name=f"engine-save-{name}", daemon=False
        )
        self._thread.start()

    def _write(self, files: CheckpointFiles) -> None:
        start = time.perf_counter()
        try:
            write_files(files)
            publish_files(files)
        except Exception as err:  # raised by `wait`, in the training thread
            self._error = err
        self.last_write_seconds = time.perf_counter() - start

    def _join(self) -> tuple[Path, str, Exception | None]:
        work_dir, name = self._pending
        if self._thread is not None:
            self._thread.join()
        error = self._error
        self._thread, self._pending, self._error = None, None, None
        self._buffers.release()
        return work_dir, name, error

    def wait(self, acc: Any) -> str | None:
        """Block until the save in flight is published (call on every process).

        Returns:
            The name of the checkpoint that was in flight, None when there was none.

        Raises:
            CheckpointError: on every process when the writer failed on the main process;
                the partial folder is removed and the previous checkpoint is intact.
        """
        if self._pending is None:
            return None
        work_dir, name, error = self._join()
        if error is not None and not (isinstance(error, OSError) or is_disk_error(error)):
            # A disk error gets agree_or_raise's line (free space, what to do); others this one.
            wrapped = CheckpointError(
                f"writing checkpoint {name!r} in the background failed ({type(error).__name__}: "
                f"{_first_line(error)}); the previous checkpoint is intact"
            )
            wrapped.__cause__, error = error, wrapped
        agree_or_raise(acc, error, work_dir / f".tmp_{name}", name, work_dir)
        return name

    def wait_quietly(self) -> None:
        """Wait for the save in flight without meeting the other processes (an exception is
        ending training): its error, if any, is logged and its partial folder removed."""
        if self._pending is None:
            return
        if self._thread is not None and self._thread.is_alive():
            logger.warning(
                "Training stopped; waiting for checkpoint %s to be written", self.in_flight
            )
        work_dir, name, error = self._join()
        if error is not None:
            shutil.rmtree(work_dir / f".tmp_{name}", ignore_errors=True)
            logger.error(
                "Checkpoint %s could not be written in the background (%s: %s); the previous "
                "checkpoint is intact",
                name, type(error).__name__, _first_line(error),
            )  # fmt: skip

    def close(self) -> None:
        """Free the staging buffers (after `wait`)."""
        self._buffers.clear()


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


@contextlib.contextmanager
def finish_on_exit() -> Iterator[None]:
    """Around training: however the block ends, wait for every save still in flight, so a
    run that raises leaves no half-written folder (`Runner.train` uses it)."""
    try:
        yield
    finally:
        for writer in list(_writers):
            writer.wait_quietly()

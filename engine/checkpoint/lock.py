"""One work_dir, one run: a lock file held for the length of ``Runner.train()``.

A second run started on a work_dir where a run is in progress would otherwise take the
first one's half-written save for the leftover of a crash and delete it. The main process
holds ``work_dir/.engine_lock`` (JSON: pid, host, start time) while training; a second run
refuses with one line naming the holder. A lock left by a process that is gone (same host,
pid no longer alive) is taken over with a warning; one from another host cannot be checked
from here, so the message says how to remove it. Leftovers of interrupted saves are cleaned
only by the process holding the lock (`holds`).

Example:
    >>> with hold_work_dir(accelerator, Path("work_dirs/demo")):
    ...     train(...)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from accelerate.utils import broadcast_object_list

from engine.checkpoint.disk_errors import write_failure

logger = logging.getLogger("engine")

LOCK = ".engine_lock"
_held: set[str] = set()  # work_dirs whose lock this process holds (resolved paths)


class WorkDirBusyError(RuntimeError):
    """Another living run holds the work_dir."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(data, dict) and isinstance(data.get("pid"), int)
    return data if ok and isinstance(data.get("host"), str) else None


def _create(path: Path, record: dict) -> bool:
    """Create `path` holding `record`, atomically; False if it exists already."""
    tmp = path.with_name(f"{LOCK}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    try:
        os.link(tmp, path)  # fails if `path` exists: creation and content in one step
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def acquire(work_dir: Path) -> None:
    """Take the lock of `work_dir` for this process.

    Raises:
        WorkDirBusyError: a living run holds it (the message names its pid, host and start).
        OSError: the folder cannot be written (with a one-line message).
    """
    work_dir = Path(work_dir)
    path = work_dir / LOCK
    host, pid = socket.gethostname(), os.getpid()
    record = {"pid": pid, "host": host, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if _create(path, record):
                _held.add(str(work_dir.resolve()))
                return
            holder = _read(path)
            if holder is None:
                logger.warning(
                    "%s is unreadable (a crash while it was written?); taking it over", path
                )
            elif holder["pid"] == pid and holder["host"] == host:
                pass  # this process's own lock, from a train() that was interrupted
            elif holder["host"] != host:
                raise WorkDirBusyError(
                    f"work_dir {work_dir} is in use by process {holder['pid']} on host "
                    f"{holder['host']} since {holder.get('started', '?')}; wait for it to end or "
                    f"choose another work_dir (delete {path} if that run is gone)"
                )
            elif _alive(holder["pid"]):
                raise WorkDirBusyError(
                    f"work_dir {work_dir} is in use by process {holder['pid']} on this host "
                    f"({host}) since {holder.get('started', '?')}; wait for it to end or choose "
                    "another work_dir"
                )
            else:
                logger.warning(
                    "Taking over %s: process %d (started %s) that held it is gone",
                    path, holder["pid"], holder.get("started", "?"),
                )  # fmt: skip
            path.unlink(missing_ok=True)
    except OSError as err:
        raise type(err)(write_failure("locking the work_dir", path, err)) from None
    raise WorkDirBusyError(f"could not take {path}: other runs keep taking it")


def release(work_dir: Path) -> None:
    """Give up the lock of `work_dir` if this process holds it."""
    path = Path(work_dir) / LOCK
    _held.discard(str(Path(work_dir).resolve()))
    holder = _read(path)
    if (
        holder is not None
        and holder["pid"] == os.getpid()
        and holder["host"] == socket.gethostname()
    ):
        path.unlink(missing_ok=True)


def holds(work_dir: Path) -> bool:
    """True when this process holds `work_dir`'s lock."""
    return str(Path(work_dir).resolve()) in _held


@contextlib.contextmanager
def hold_work_dir(accelerator: Any, work_dir: Path | None) -> Iterator[None]:
    """Hold `work_dir`'s lock on the main process for the block; every process raises the
    main process's error if it cannot be taken (so none waits for it in a barrier)."""
    if work_dir is None:
        yield
        return
    error = None
    if accelerator.is_main_process:
        try:
            acquire(work_dir)
        except (WorkDirBusyError, OSError) as err:
            error = err
    if accelerator.num_processes > 1:
        shared = [None if error is None else (type(error).__name__, str(error))]
        broadcast_object_list(shared)
        if shared[0] is not None and error is None:
            error = (WorkDirBusyError if shared[0][0] == "WorkDirBusyError" else OSError)(
                shared[0][1]
            )
    if error is not None:
        raise error
    try:
        yield
    finally:
        if accelerator.is_main_process:
            release(work_dir)

"""Checkpoints across machines: one writer, one decision, shared or node-local work_dirs.

Two layouts are supported (docs/distributed.md, "Checkpoints on several machines"):

* **shared** — every process sees the same ``work_dir`` (NFS, Lustre, one machine);
* **node-local** — each machine has its own disk at that path.

In both, the main process writes the whole checkpoint, including every process's random
state (`gather_rng_states` brings them to it), and decides alone which checkpoint a run
resumes from (`agree_on_checkpoint`), so processes never disagree. Whether ``work_dir`` is
shared is found out (`is_shared`): the main process writes a marker there and every process
looks for it. On node-local disks the main process then sends the checkpoint's files to the
others, which write them into their own ``work_dir`` before resuming from them.
``ENGINE_NODE_LOCAL=1`` forces the node-local path (e.g. to test it on one machine).

Example:
    >>> folder = agree_on_checkpoint(accelerator, work_dir, find_latest_intact(work_dir))
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from accelerate.utils import broadcast_object_list, gather_object

from engine.checkpoint import rng
from engine.checkpoint.io import CheckpointError, fsync_dir, write_text_atomic

_MARKER = ".engine_shared_"


def gather_rng_states(accelerator: Any) -> list[dict]:
    """Every process's random state as JSON, in process order (on every process)."""
    mine = rng.to_json(rng.capture())
    if accelerator.num_processes == 1:
        return [mine]
    return list(gather_object([mine]))


def is_shared(accelerator: Any, work_dir: Path) -> bool:
    """True when every process sees the main process's ``work_dir`` (call on every process)."""
    if accelerator.num_processes == 1:
        return True
    if os.environ.get("ENGINE_NODE_LOCAL", "") not in ("", "0"):
        return False
    token = [secrets.token_hex(8) if accelerator.is_main_process else None]
    broadcast_object_list(token)
    marker = Path(work_dir) / f"{_MARKER}{token[0]}"
    if accelerator.is_main_process:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        write_text_atomic(marker, token[0])
    accelerator.wait_for_everyone()
    seen = marker.is_file()
    everyone = gather_object([seen])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        marker.unlink(missing_ok=True)
    return all(everyone)


def agree_on_checkpoint(accelerator: Any, work_dir: Path, chosen: Path | None) -> Path | None:
    """The main process's `chosen` checkpoint, the same on every process.

    On node-local disks its files are sent to every other process and written into that
    process's ``work_dir`` under the same name (replacing what was there).

    Args:
        accelerator: the run's Accelerator.
        work_dir: this process's work_dir.
        chosen: the checkpoint folder the main process picked (ignored on the others).

    Returns:
        The folder to resume from on this process, or None on every process.
    """
    if accelerator.num_processes == 1:
        return chosen
    shared = is_shared(accelerator, work_dir)
    decision = [str(chosen) if accelerator.is_main_process and chosen is not None else None]
    broadcast_object_list(decision)
    if decision[0] is None:
        return None
    folder = Path(decision[0])
    if shared:
        return folder
    files = [_read_files(folder) if accelerator.is_main_process else None]
    broadcast_object_list(files)
    if accelerator.is_main_process:
        return folder
    local = Path(work_dir) / folder.name
    _write_files(local, files[0])
    return local


def _read_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write a received checkpoint into `folder`, published whole by a rename."""
    tmp = folder.with_name(f".tmp_recv_{folder.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        fsync_dir(folder.parent)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"writing the checkpoint received from the main process to {folder} failed "
            f"({err.strerror or err}); free space or choose another work_dir"
        ) from err

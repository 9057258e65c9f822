"""Publishing a checkpoint folder: every process agrees, then the folder appears at once.

A save writes into ``work_dir/.tmp_<name>/``; `agree_or_raise` lets every process learn
whether any write failed (none waits in a barrier for a process that raised); `publish`
renames the finished folder into place; `clean_partial_saves` removes what a crash left.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint.disk_errors import is_disk_error, write_failure
from engine.checkpoint.io import CheckpointError, fsync_dir

logger = logging.getLogger("engine")


def agree_or_raise(acc: Any, error: Exception | None, tmp: Path, name: str, work_dir: Path) -> None:
    """Meet the other processes and learn whether any failed; if one did, every process
    raises (none is left waiting for the others in a barrier) and the partial folder goes:
    work_dir stays as it was (a failed write, a full disk)."""
    failed = error is not None
    if acc.num_processes > 1:
        from accelerate.utils import reduce

        flag = torch.tensor([1.0 if failed else 0.0], device=acc.device)
        failed = bool(reduce(flag, reduction="sum").item() > 0)
    if not failed:
        return
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    if error is None:
        raise CheckpointError(
            f"saving checkpoint {name!r} in {work_dir} failed on another process; "
            "the previous checkpoint is intact"
        )
    if isinstance(error, OSError) or is_disk_error(error):
        # torch and safetensors wrap a full disk's OSError in their own errors
        raise CheckpointError(
            write_failure(f"saving checkpoint {name!r}", work_dir, error)
            + "; the previous checkpoint is intact"
        ) from error
    raise error


def publish(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`; an existing `final` is moved aside, then deleted."""
    old = final.with_name(f".old_{final.name}")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def clean_partial_saves(work_dir: Path) -> None:
    """Remove what an interrupted save left: ``.tmp_*`` folders, and ``.old_*`` ones whose
    replacement was published (one whose replacement never appeared is put back)."""
    for path in sorted(Path(work_dir).glob(".tmp_*")):
        logger.info("Removing %s, left by an interrupted save", path)
        shutil.rmtree(path, ignore_errors=True)
    for old in sorted(Path(work_dir).glob(".old_*")):
        final = old.with_name(old.name[len(".old_") :])
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(final)

"""The pieces of `LoggerHook`'s output that are plain functions: the line's position head,
lengths and numbers as they print, and copying a run's log files elsewhere."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch


def position(
    state, length: int | None, epoch: int, batch_idx: int, it: int
) -> tuple[str, int | None]:
    """``Epoch(train) [3][ 40/100]`` or ``Iter(train) [ 40/1000]``, and the iterations left."""
    if state.max_epochs is None:
        total = state.max_iters
        if not total:
            return f"Iter(train) [{it}]", None
        return f"Iter(train) [{it:>{len(str(total))}}/{total}]", total - it
    if not length:
        return f"Epoch(train) [{epoch + 1}][{batch_idx + 1}]", None
    left = (state.max_epochs - epoch) * length - (batch_idx + 1)
    return f"Epoch(train) [{epoch + 1}][{batch_idx + 1:>{len(str(length))}}/{length}]", left


def metric_number(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def jsonable(value: Any) -> Any:
    """`value` with tensors and arrays as (nested) lists, for a JSON file; other objects
    that JSON cannot hold become None (MMEngine's ``_process_tags``)."""
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    return None


def copy_logs(work_dir: Any, out_dir: Any, suffixes: tuple[str, ...], keep_local: bool) -> Path:
    """Copy the files directly in `work_dir` whose names end with one of `suffixes` (``.json``
    also means engine's ``.jsonl``) to ``out_dir/<work_dir name>``; ``keep_local=False``
    removes the originals. Returns the folder copied to."""
    wanted = set(suffixes) | ({".jsonl"} if ".json" in suffixes else set())
    target = Path(out_dir) / Path(work_dir).name
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(work_dir).iterdir()):
        if path.is_file() and path.name.endswith(tuple(wanted)):
            shutil.copy2(path, target / path.name)
            if not keep_local:
                path.unlink()
    return target

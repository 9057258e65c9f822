"""The pieces of `LoggerHook`'s output that are plain functions: engine's training and metric
lines with their records, the line's position head, numbers as they print and as JSON holds
them, and copying a run's log files elsewhere."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.checkpoint.data_position import loader_length


def train_line(
    runner: Any,
    timer: Any,
    at: tuple[int, int, int, int],
    times: tuple[int, float, float],
    scalars: dict[str, float],
    rates: dict[str, float],
    device: torch.device | None,
) -> tuple[str, dict]:
    """Engine's line for a training window and its ``scalars.jsonl`` record.

    Args:
        timer: the run's `IterTimerHook` (for the ETA), or None.
        at: epoch, batch index, iterations done and optimizer steps at the window's end.
        times: the window's iterations and its summed iteration and data times.
        scalars: the window means; rates: the throughput hook's numbers.
        device: where the losses live (the peak memory is printed for CUDA).
    """
    epoch, batch_idx, it, step = at
    iters, time, data_time = times
    length = loader_length(getattr(runner, "train_dataloader", None))
    head, left = position(runner.state, length, epoch, batch_idx, it)
    optim_wrapper = getattr(runner, "optim_wrapper", None)
    lr = optim_wrapper.get_lr() if optim_wrapper is not None else {}
    lrs = {k: float(v[0]) for k, v in lr.items() if v}  # the first param group's, as MMEngine
    record: dict[str, Any] = dict(mode="train", epoch=epoch + 1, iter=it, step=step, **lrs)
    parts = [head] + [f"{k}: {v:.4e}" for k, v in lrs.items()]
    if timer is not None:
        if left is not None:
            eta = datetime.timedelta(seconds=int(timer.seconds_per_iter() * left))
            parts.append(f"eta: {eta}")
        record.update(time=time / iters, data_time=data_time / iters)
        parts += [f"time: {time / iters:.4f}", f"data_time: {data_time / iters:.4f}"]
    if device is not None and device.type == "cuda":
        record["memory"] = torch.cuda.max_memory_allocated(device) // 2**20
        parts.append(f"memory: {record['memory']}")
    parts += [f"{k}: {v:.4f}" for k, v in scalars.items()]
    parts += [f"{k}: {v:.4f}" if k == "mfu" else f"{k}: {v:.1f}" for k, v in rates.items()]
    record.update(scalars)
    record.update(rates)
    return "  ".join(parts), record


def metrics_line(runner: Any, mode: str, metrics: dict | None) -> tuple[str, dict]:
    """Engine's line for a val/test epoch's metrics and its ``scalars.jsonl`` record."""
    # Evaluation is over: reading a tensor-valued metric here costs nothing in training.
    metrics = {k: metric_number(v) for k, v in (metrics or {}).items()}
    state = runner.state
    length = loader_length(getattr(runner, f"{mode}_dataloader", None))
    pos = f"[{length}/{length}]" if length is not None else ""
    by_epoch = state.max_epochs is not None
    if by_epoch and mode == "val":
        head = f"Epoch(val) [{state.epoch}]{pos}"  # the loops validate after counting the epoch
    else:
        head = f"{'Epoch' if by_epoch else 'Iter'}({mode}) {pos}".rstrip()
    items = [f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in metrics.items()]
    record = dict(mode=mode, epoch=state.epoch, iter=state.iter, step=state.step, **metrics)
    return "  ".join([head, *items]), record


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

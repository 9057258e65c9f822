"""`LoggerHook`'s MMEngine path: lines and tags from ``runner.log_processor``, at MMEngine's points.

A run given a log processor (``Runner(log_processor=dict(window_size=50))``, a ported
config's ``dict(type='LogProcessor', ...)`` or a user's subclass) gets its lines and tags
from that processor, exactly as MMEngine's ``LoggerHook`` asks for them. The processor reads
the message hub, which `RuntimeInfoHook` and `IterTimerHook` fill every iteration with
device tensors (read back in one transfer per key when a line is made, not per iteration).
A run without one keeps engine's own line (window means over the processes, throughput):
the Runner's default processor says so with ``engine_window_line = True``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from engine.hooks.log_lines import jsonable

logger = logging.getLogger("engine")


def processor_of(runner: Any) -> Any:
    """The runner's log processor when it formats the lines, else None (engine's line)."""
    processor = getattr(runner, "log_processor", None)
    if processor is None or getattr(processor, "engine_window_line", False) is True:
        return None
    return processor


def train_log_due(hook: Any, runner: Any, batch_idx: int) -> bool:
    """Whether iteration `batch_idx` ends a logging window, by MMEngine's rules."""
    if getattr(runner, "max_epochs", 0) is None:
        # By iterations engine's batch_idx restarts with each pass over the data, where
        # MMEngine's is the global iteration: count iterations instead.
        if hook.every_n_train_iters(runner, hook.interval):
            return True
        return hook.is_last_train_iter(runner) and (
            not hook.ignore_last or runner.max_iters <= hook.interval
        )
    if hook.every_n_inner_iters(batch_idx, hook.interval):
        return True
    loader = runner.train_dataloader
    return hook.end_of_epoch(loader, batch_idx) and (
        not hook.ignore_last or len(loader) <= hook.interval
    )


def log_exp_name(hook: Any, runner: Any, batch_idx: int) -> None:
    """``Exp name: ...`` every `interval_exp_name` iterations and at each epoch's end."""
    if hook.every_n_train_iters(runner, hook.interval_exp_name) or hook.end_of_epoch(
        runner.train_dataloader, batch_idx
    ):
        _runner_logger(runner).info(f"Exp name: {runner.experiment_name}")


def log_train_iter(hook: Any, runner: Any, processor: Any, batch_idx: int) -> None:
    """The processor's line and tag at a window's end."""
    tag, line = processor.get_log_after_iter(runner, batch_idx, "train")
    hook._writer.say(runner, line)
    step = runner.iter + 1
    _add_scalars(hook, runner, tag, step)
    hook._writer.write_jsonl(runner, dict(mode="train", **_numbers(tag)))


def log_eval_iter(hook: Any, runner: Any, processor: Any, batch_idx: int, mode: str) -> None:
    """Every `interval` val/test batches, the processor's line (as MMEngine)."""
    if hook.every_n_inner_iters(batch_idx, hook.interval):
        _, line = processor.get_log_after_iter(runner, batch_idx, mode)
        hook._writer.say(runner, line)


def log_val_epoch(hook: Any, runner: Any, processor: Any) -> None:
    tag, line = processor.get_log_after_epoch(runner, len(runner.val_dataloader), "val")
    hook._writer.say(runner, line)
    # One step axis for every tracker, the iteration (W&B needs growing steps), as engine's
    # own line does; 0 for a run that does not train.
    step = runner.iter if _train_loop(runner) is not None else 0
    _add_scalars(hook, runner, tag, step)
    hook._writer.write_jsonl(runner, dict(mode="val", **_numbers(tag)))


def log_test_epoch(hook: Any, runner: Any, processor: Any) -> None:
    """The processor's test line; its tag (non-scalar metrics too) to ``<timestamp>.json``
    in the run folder, as MMEngine writes it."""
    tag, line = processor.get_log_after_epoch(
        runner, len(runner.test_dataloader), "test", with_non_scalar=True
    )
    hook._writer.say(runner, line)
    folder = getattr(runner, "log_dir", None)
    if isinstance(folder, str | os.PathLike):
        name = hook.json_log_path or f"{runner.timestamp}.json"
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(jsonable(tag)))
    hook._writer.write_jsonl(runner, dict(mode="test", **_numbers(tag)))


def _add_scalars(hook: Any, runner: Any, tag: dict, step: int) -> None:
    """The tag to the trackers, through ``runner.visualizer`` as MMEngine does (engine's
    Visualizer forwards to Accelerate's trackers)."""
    visualizer = getattr(runner, "visualizer", None)
    if visualizer is not None:
        visualizer.add_scalars(tag, step=step, file_path=hook.json_log_path)


def _numbers(tag: dict) -> dict:
    """The tag's plain numbers, for ``scalars.jsonl``."""
    return {k: v for k, v in tag.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _train_loop(runner: Any) -> Any:
    loop = getattr(runner, "_train_loop", None)
    loop = getattr(runner, "train_loop", None) if loop is None else loop
    return None if isinstance(loop, dict) else loop


def _runner_logger(runner: Any) -> Any:
    found = getattr(runner, "logger", None)
    return found if found is not None else logger

"""The settings a checkpoint records about its run, and what a resumed run changed.

A resumed run may be started with other flags than the run that saved the checkpoint.
`save_checkpoint` records the batch size and process count in the checkpoint's ``meta``;
`engine.runner.resume` compares them with the resuming run's and logs one line per
difference. (The lr, the loop's length and the accumulation are compared from the optimizer
and train states by `engine.runner.resume_checks`.)

Example:
    >>> changed_settings({"batch_size": 32, "num_processes": 1}, {"batch_size": 64, "num_processes": 1})
    ["batch_size: 32 in the checkpoint's run, 64 now; this run's value is used"]
"""

from __future__ import annotations

from typing import Any


def run_settings(runner: Any) -> dict[str, Any]:
    """The run's batch size per process and process count."""
    return {
        "batch_size": _batch_size(getattr(runner, "train_dataloader", None)),
        "num_processes": runner.accelerator.num_processes,
    }


def changed_settings(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line for each setting that differs between `saved` and `now` (keys of both)."""
    lines = []
    for key in now:
        if key not in saved or saved[key] == now[key]:
            continue
        lines.append(
            f"{key}: {saved[key]} in the checkpoint's run, {now[key]} now; this run's value is used"
        )
    return lines


def _batch_size(loader: Any) -> int | None:
    size = getattr(loader, "batch_size", None)
    if size is None:  # a loader built on a batch sampler
        size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    return size if isinstance(size, int) else None

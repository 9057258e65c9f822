"""The settings a checkpoint records about its run, and what a resumed run changed.

A resumed run may be started with other flags than the run that saved the checkpoint
(another lr, batch size or process count). `save_checkpoint` records these settings in the
checkpoint's ``meta``; `engine.runner.resume` compares them with the resuming run's and logs
one line per difference, saying which value the resumed run uses. (The loop's length and
the accumulation are compared from the train state, by `engine.runner.resume_checks`.)

Example:
    >>> changed_settings({"lr": [0.003], "batch_size": 32}, {"lr": [0.01], "batch_size": 64})
    ['lr: 0.003 in the checkpoint's run, 0.01 now; the checkpoint's optimizer state keeps 0.003',
     'batch_size: 32 in the checkpoint's run, 64 now; this run's value is used']
"""

from __future__ import annotations

from typing import Any

from engine.optim.optim_wrapper_dict import members

# Which value a resumed run goes on with: the optimizer's param groups come back from the
# checkpoint (as in MMEngine), the loop's limits and the data loader are this run's.
_KEPT_FROM_CHECKPOINT = {"lr"}


def run_settings(runner: Any) -> dict[str, Any]:
    """The run's base lr per optimizer, batch size per process and process count.

    Read it before a checkpoint's optimizer state is loaded: that replaces the lr.
    """
    wrappers = members(runner.optim_wrapper) if runner.optim_wrapper is not None else []
    return {
        "lr": [_base_lr(w) for w in wrappers],
        "batch_size": _batch_size(getattr(runner, "train_dataloader", None)),
        "num_processes": runner.accelerator.num_processes,
    }


def changed_settings(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line for each setting that differs between `saved` and `now` (keys of both)."""
    lines = []
    for key in now:
        if key not in saved or saved[key] == now[key]:
            continue
        old, new = _show(saved[key]), _show(now[key])
        if key in _KEPT_FROM_CHECKPOINT:
            verdict = f"the checkpoint's optimizer state keeps {old}"
        else:
            verdict = "this run's value is used"
        lines.append(f"{key}: {old} in the checkpoint's run, {new} now; {verdict}")
    return lines


def _base_lr(wrapper: Any) -> float | None:
    groups = getattr(wrapper, "param_groups", None) or []
    if not groups:
        return None
    group = groups[0]  # the first group's, as the log line shows it
    return float(group.get("initial_lr", group.get("lr")))


def _batch_size(loader: Any) -> int | None:
    size = getattr(loader, "batch_size", None)
    if size is None:  # a loader built on a batch sampler
        size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    return size if isinstance(size, int) else None


def _show(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return "None" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

"""What changed between a checkpoint and the run resuming from it: say it, or refuse.

Resuming continues the saved run. When the resuming run's settings differ, each change
is named in one log line with the value that wins; a change that cannot be continued (an
optimizer of another type, a data position that no longer exists) is refused in one line
before anything is loaded into the optimizer or trained.

Example:
    >>> check_optimizer_fits(runner, torch.load('epoch_3/optimizer.pt'), Path('epoch_3'))
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.checkpoint.io import CheckpointError
from engine.optim.optim_wrapper_dict import members
from engine.runner.train_state import updates_done

logger = logging.getLogger("engine")


def _named_members(optim_wrapper: Any, saved: dict) -> list[tuple[str, Any, dict]]:
    """(name, wrapper, saved state) per member; a plain wrapper is named 'optimizer'."""
    inner = getattr(optim_wrapper, "optim_wrappers", None)
    if inner:
        return [(name, w, saved.get(name, {})) for name, w in inner.items()]
    return [("optimizer", optim_wrapper, saved)]


def check_optimizer_fits(runner: Any, saved: dict, folder: Path) -> None:
    """Refuse an optimizer state saved by another optimizer type (AdamW into SGD would fail
    later, at the first step); warn, one line each, when the lr or accumulation changed.

    Raises:
        CheckpointError: a member's saved param groups lack settings this run's optimizer
            needs (its type changed).
    """
    for name, wrapper, state in _named_members(runner.optim_wrapper, saved):
        groups = state.get("param_groups") if isinstance(state, dict) else None
        if not groups:
            continue
        optimizer = getattr(wrapper.optimizer, "optimizer", wrapper.optimizer)
        current = optimizer.param_groups
        # Another type both lacks this one's settings and has settings of its own (betas in
        # an SGD); a newer torch only adds settings, which it fills in when loading.
        ours, saved_keys = set(current[0]) - {"params", "initial_lr"}, set(groups[0])
        lacking = sorted(ours - saved_keys)
        foreign = sorted(saved_keys - ours - {"params", "initial_lr"})
        if lacking and foreign:
            raise CheckpointError(
                f"{folder} holds {name} state of another optimizer type (its param groups have "
                f"{foreign} and lack {lacking}, which this run's {type(optimizer).__name__} "
                "needs); resume with the optimizer it was saved with, or pass the checkpoint "
                "as load_from to start anew"
            )
        key = "initial_lr" if "initial_lr" in groups[0] and "initial_lr" in current[0] else "lr"
        was, now = groups[0].get(key), current[0].get(key)
        if was is not None and now is not None and float(was) != float(now):
            logger.warning(
                "Resuming %s: %s lr was %g in the checkpoint, %g in this run's config; the "
                "checkpoint's wins (it continues the saved schedule)",
                folder, name, float(was), float(now),
            )  # fmt: skip


def report_changes(runner: Any, saved_state: dict, meta: dict, folder: Path) -> None:
    """One warning line per run setting that differs from the checkpoint's, and which wins."""
    first = members(runner.optim_wrapper)[0] if runner.optim_wrapper is not None else None
    was = meta.get("accumulative_counts")
    now = getattr(first, "accumulative_counts", None)
    if was is not None and now is not None and was != now:
        logger.warning(
            "Resuming %s: accumulative_counts was %d, this run's is %d; this run's wins "
            "(updates from here on use windows of %d)",
            folder, was, now, now,
        )  # fmt: skip
    state = runner.state
    for limit in ("max_epochs", "max_iters"):
        was, now = saved_state.get(limit), getattr(state, limit)
        if was is not None and now is not None and was != now:
            logger.warning(
                "Resuming %s: %s was %d, this run's is %d; this run's wins", folder, limit, was, now
            )


def replan_for_data(runner: Any, saved_batches: int | None, meta: dict, folder: Path) -> None:
    """Fit the restored counters to a training loader whose length changed (another batch
    size, dataset size or process count), or refuse.

    Epoch-based: from an epoch boundary the run continues with the next epoch, its
    iteration counters recounted with the new length (so the run ends where this run's
    config says); inside an epoch the position does not exist any more: refused.
    Iteration-based: the iteration count stays, and a new pass over the data begins.

    Raises:
        CheckpointError: epoch-based, saved inside an epoch, and the length changed.
    """
    loader = getattr(runner, "train_dataloader", None)
    try:
        length = len(loader)
    except TypeError:
        return
    if saved_batches is None or saved_batches == length or runner.train_cfg is None:
        return
    state = runner.state
    changed = (
        f"{folder} was saved with {saved_batches} batches per epoch "
        f"({meta.get('num_processes')} processes), this run has {length} "
        f"({runner.accelerator.num_processes} processes)"
    )
    if runner.train_cfg["by_epoch"]:
        done = state.epoch + (1 if state.end_of_epoch or state.inner_iter >= saved_batches else 0)
        if state.inner_iter not in (0, saved_batches) and not state.end_of_epoch:
            raise CheckpointError(
                f"{changed}; it was saved inside epoch {state.epoch + 1}, a position this data "
                "does not have: resume with the same batch size and dataset, or from an "
                "epoch_* checkpoint"
            )
        state.epoch, state.inner_iter, state.end_of_epoch = done, 0, False
        state.iter = done * length
        acc = members(runner.optim_wrapper)[0].accumulative_counts
        total = state.total_iters(length)
        state.step = updates_done(state.iter, acc, total)
        logger.warning(
            "%s; re-planned: continuing with epoch %d of %d at iteration %d",
            changed, done + 1, state.max_epochs, state.iter,
        )  # fmt: skip
    else:
        state.epoch += 1 if state.inner_iter else 0
        state.inner_iter = 0
        logger.warning(
            "%s; continuing at iteration %d of %d with a new pass over the data",
            changed, state.iter, state.max_iters,
        )  # fmt: skip

"""Resume a run from a checkpoint folder, or load ``load_from``'s weights, before training.

A resumed run continues exactly as the uninterrupted one: weights, optimizer state and
param-group values, counters (so the data position, schedule values and accumulation
window), hook states, the sampler's seed and the random generators all come back. The
loops then skip the consumed batches without loading them (DataLoader workers replay them,
see `engine.runner.loops`). What differs from the saved run is named or refused by
`engine.runner.resume_checks`.

Example:
    >>> load_checkpoint(runner, resume=True)            # what Runner.train() does first
    PosixPath('work_dirs/demo/iter_400')
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.checkpoint import rng
from engine.checkpoint.data_position import loader_length, seedable_sampler
from engine.checkpoint.find import checkpoint_folder, find_latest_checkpoint, read_engine_state
from engine.checkpoint.io import (
    MODEL,
    OPTIMIZER,
    STATE,
    CheckpointError,
    load_tensors,
    read_json,
    torch_load_weights_only,
)
from engine.checkpoint.lock import holds as holds_lock
from engine.checkpoint.manifest import verify
from engine.checkpoint.model_weights import load_state_into, load_weights
from engine.checkpoint.node_local import agree_on_checkpoint
from engine.checkpoint.publish import clean_partial_saves
from engine.checkpoint.run_settings import changed_settings, run_settings
from engine.checkpoint.save import (
    _optimizers,
    stateful_hooks,
    work_dir_of,
)
from engine.checkpoint.sharded import with_sharded_entries
from engine.checkpoint.sharded_state import has_shards as has_sharded_state
from engine.checkpoint.sharded_state import load_shards as load_sharded
from engine.hooks.hook import Hook
from engine.runner.resume_checks import check_optimizer_fits, replan_for_data, report_changes

logger = logging.getLogger("engine")


def load_checkpoint(
    runner: Any, resume: bool | str | Path = False, load_from: Any = None
) -> Path | None:
    """Resume or load weights, by MMEngine's rules.

    * ``resume`` a path: resume from that checkpoint folder.
    * ``resume=True`` with ``load_from`` a resumable engine checkpoint: resume from it, as
      MMEngine (what ``tools/train.py --resume <ckpt>`` sets).
    * ``resume=True`` otherwise: resume from the latest checkpoint in ``work_dir``; if there
      is none, load ``load_from``'s weights; with neither, training starts from scratch
      (auto-resume of preemptible jobs).
    * ``resume=False``: load ``load_from``'s weights if given; counters start at zero.

    Args:
        runner: the `Runner`, built and not yet training.
        resume: True, False or a checkpoint folder.
        load_from: see `engine.checkpoint.model_weights.load_weights`.

    Returns:
        The checkpoint folder resumed from, or None.
    """
    if resume and resume is not True:
        return resume_from(runner, resume)
    if resume is True:
        _clean_work_dir(runner)  # first: a crash may have parked the latest one aside
        if load_from is not None and _is_resumable(load_from):
            return resume_from(
                runner, load_from["path"] if isinstance(load_from, dict) else load_from
            )
        # The main process picks the newest intact checkpoint; every process resumes from it
        # (on node-local disks it is sent to the others: engine.checkpoint.node_local).
        acc, work_dir = runner.accelerator, work_dir_of(runner)
        chosen = find_latest_checkpoint(work_dir) if acc.is_main_process else None
        latest = agree_on_checkpoint(acc, work_dir, chosen)
        verified = latest is not None and acc.is_main_process
        if latest is not None:
            return resume_from(runner, latest, verified=verified)
        logger.info("resume=True: no checkpoint in %s; starting from scratch", runner.work_dir)
    if load_from is not None:
        load_weights(runner, load_from)
    return None


def load_eval_weights(
    runner: Any, resume: bool | str | Path = False, load_from: Any = None
) -> None:
    """Load the weights that `load_checkpoint` would resume or load, and nothing else:
    what ``val()``/``test()`` evaluate when they run before any training."""
    source = load_from
    if resume and resume is not True:
        source = resume
    elif resume is True and load_from is not None and _is_resumable(load_from):
        source = load_from  # as load_checkpoint: resume=True resumes from load_from
    elif resume is True and getattr(runner, "work_dir", None) is not None:
        acc, work_dir = runner.accelerator, work_dir_of(runner)  # one decision, as in training
        chosen = find_latest_checkpoint(work_dir) if acc.is_main_process else None
        source = agree_on_checkpoint(acc, work_dir, chosen) or load_from
    if source is not None:
        load_weights(runner, source)


def _is_resumable(source: Any) -> bool:
    path = Path(source["path"] if isinstance(source, dict) else source)
    return (
        path.is_dir()
        and (path / STATE).is_file()
        and ((path / OPTIMIZER).is_file() or has_sharded_state(path))
    )


def resume_from(runner: Any, checkpoint: str | Path, verified: bool = False) -> Path:
    """Restore `runner` from the checkpoint folder `checkpoint` (see `load_checkpoint`);
    its files are checked against its manifest first unless `verified`.

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        CheckpointError: a file is corrupt or tampered with, is a weights-only (best)
            checkpoint, or does not fit the run (other model keys or shapes, optimizer).
    """
    _clean_work_dir(runner)
    folder = checkpoint_folder(checkpoint, "resume")
    if not verified:
        verify(folder)  # a checkpoint named explicitly that is broken is refused, not replaced
    checkpoint = with_sharded_entries(read_engine_state(folder), folder)  # hooks' DCP states
    asked = run_settings(runner)  # batch size and processes, compared once resumed
    if not checkpoint["meta"].get("resumable", False):
        raise CheckpointError(
            f"{folder} holds weights only (a best checkpoint); resume needs a periodic one "
            "(epoch_*/iter_*), or pass it as load_from"
        )
    if has_sharded_state(folder):  # any process count: DCP reads by global offsets
        load_sharded(folder, runner._raw_model, _optimizers(runner))
    else:
        tensors, _ = load_tensors(folder / MODEL, "the model weights of an engine checkpoint")
        load_state_into(runner._raw_model, tensors, folder / MODEL, strict=True)
    if runner.optim_wrapper is not None and not has_sharded_state(folder):
        state = torch_load_weights_only(
            folder / OPTIMIZER, "the OptimWrapper.state_dict() that engine saves"
        )
        check_optimizer_fits(runner, state, folder)
        try:
            runner.optim_wrapper.load_state_dict(state)
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise CheckpointError(
                f"{folder / OPTIMIZER} does not fit this run's optimizer: {str(err).splitlines()[0]}"
            ) from None
    _load_hook_states(runner, checkpoint["hooks"], folder)
    report_changes(runner, checkpoint["train_state"], checkpoint["meta"], folder)
    _load_train_state(runner, checkpoint["train_state"], folder)
    _check_data(runner, checkpoint["meta"], folder)
    _restore_rng_at_resume_point(runner, folder, checkpoint["meta"])
    runner.hooks.call("after_load_checkpoint", runner, checkpoint=checkpoint)
    s = runner.state
    logger.info(
        "Resumed from %s: epoch %d, iter %d, batch %d of the epoch",
        folder, s.epoch, s.iter, s.inner_iter,
    )  # fmt: skip
    for line in changed_settings(checkpoint["meta"].get("settings", {}), asked):
        logger.warning("Resumed with a changed setting: %s", line)
    return folder


def _clean_work_dir(runner: Any) -> None:
    """Remove (or put back) what interrupted saves left in work_dir, on the main process."""
    if getattr(runner, "work_dir", None) is None:
        return
    # Only the run holding work_dir's lock cleans: another's may be a save in progress.
    if runner.accelerator.is_main_process and holds_lock(work_dir_of(runner)):
        clean_partial_saves(work_dir_of(runner))
    runner.accelerator.wait_for_everyone()


def _load_train_state(runner: Any, saved: dict, folder: Path) -> None:
    state = runner.state
    limits = (state.max_epochs, state.max_iters)  # this run's config wins: train longer
    try:
        state.load_state_dict(saved)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / STATE}: train_state is invalid ({err})") from None
    state.max_epochs, state.max_iters = limits
    # A stop request (a signal, a stop hook) belonged to the process that received it; a
    # hook that stops for a lasting reason decides again from its restored state.
    state.should_stop = False


def _load_hook_states(runner: Any, saved: dict, folder: Path) -> None:
    hooks = stateful_hooks(runner)
    for name, state in saved.items():
        if name in hooks:
            hooks[name].load_state_dict(state)
        else:
            logger.warning("%s has state for hook %s, absent from this run; ignored", folder, name)


def _check_data(runner: Any, meta: dict, folder: Path) -> None:
    loader = getattr(runner, "train_dataloader", None)
    replan_for_data(runner, meta.get("train_batches"), meta, folder)
    sampler, seed = seedable_sampler(loader), meta.get("data_seed")
    if sampler is not None and seed is not None and int(sampler.initial_seed) != seed:
        # An unseeded run drew its shuffling seed at random: keep the saved run's order.
        sampler.initial_seed = seed


class _RestoreRng(Hook):
    """Restores the generators on the first training iteration of a resumed run."""

    priority = 0  # before any other hook can draw a random number

    def __init__(self, state: dict) -> None:
        self.state: dict | None = state

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        if self.state is not None:
            rng.restore(self.state)
            self.state = None


def _restore_rng_at_resume_point(runner: Any, folder: Path, meta: dict) -> None:
    """Put the generators back where they were when the checkpoint was taken, at the
    matching point of the resumed loop.

    Creating a DataLoader iterator draws a seed from the global generator. A checkpoint
    taken inside an epoch had drawn it already, while the resumed run draws it again for
    its skipping iterator: there the states are restored after that, on the first
    iteration. At an epoch's start or end the next iterator is yet to come in both runs:
    restore now.
    """
    acc = runner.accelerator
    path = folder / f"rng_state_{acc.process_index}.json"
    same_processes = meta.get("num_processes") == acc.num_processes
    if same_processes and not path.is_file():
        # Every process of the saving run wrote its file: a missing one means the folder
        # is incomplete (copied in part, edited), and resuming from it would not be exact.
        raise CheckpointError(
            f"{folder} is incomplete: {path.name} is missing (each of its "
            f"{acc.num_processes} processes saved one); resume from a complete checkpoint"
        )
    if not same_processes:
        logger.warning(
            "%s was saved by %s processes, this run has %d: random states are not restored",
            folder, meta.get("num_processes"), acc.num_processes,
        )  # fmt: skip
        return
    data = read_json(path, "the random states that engine saves")
    try:
        state = rng.from_json(data)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is not a valid random-state file ({err!r})") from None
    inner, length = (
        runner.state.inner_iter,
        loader_length(getattr(runner, "train_dataloader", None)),
    )
    if inner == 0 or length is None or inner >= length:
        rng.restore(state)
    else:
        runner.hooks.add(_RestoreRng(state))

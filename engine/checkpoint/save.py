"""Save checkpoints: a checkpoint is a folder in ``work_dir``.

Layout (``work_dir/epoch_3/``, ``iter_400/``, ``best_accuracy_top1/``)::

    model.safetensors        the unwrapped model's state dict (tied tensors stored once)
    optimizer.pt             OptimWrapper(Dict).state_dict(): optimizer, param-group values
                             (lr, initial_lr), accumulation position, fp16 loss scaler;
                             torch.save, read back with weights_only=True
    engine_state.json        {"format", "version", "train_state" (TrainState), "hooks" (each
                             stateful hook's state_dict, by name), "meta" (data position,
                             seeds, process count, versions), and what hooks add in
                             before_save_checkpoint}
    engine_tensors.safetensors  tensors referenced from engine_state.json (only if any)
    rng_state_<rank>.json    one per process: Python, NumPy, torch CPU and CUDA generators
                             (all written by the main process: engine.checkpoint.node_local)
    manifest.json            written last: each file's size and hash (engine.checkpoint.manifest);
                             resume, load_from and export verify it

``work_dir/last_checkpoint`` holds the name of the newest periodic checkpoint. Best
checkpoints (``best_<metric>/``) hold weights and engine_state.json only: they are for
evaluation and `load_from`, not for resuming.

A save writes into ``work_dir/.tmp_<name>/``, fsyncs every file, renames the folder to its
name (an older folder of that name is moved aside first and deleted after), and only then
rewrites ``last_checkpoint``. A crash at any point leaves the previous checkpoint and the
pointer to it intact; leftovers are cleaned when a run resumes (`engine.runner.resume`), by
the run holding the work_dir's lock only (`engine.checkpoint.lock`). Resume reads it all back. Weights alone load with `engine.checkpoint.model_weights.load_weights`.
Finding the latest checkpoint and reading engine_state.json are `engine.checkpoint.find`'s
job, writing the weights out for inference `engine.checkpoint.export`'s (both re-exported here).

Exactness of resume (bit-identical weights on CPU): the loops skip consumed batches with
``accelerate.skip_first_batches`` (indices only, nothing is loaded; loaders with workers
replay them, workers seeded as before, so worker-side augmentation repeats), the schedules are pure
functions of the counters, the optimizer state and counters come back, and the generators
are restored at the point in the loop where they were captured. Not reproduced: random
numbers that the *dataset* draws from the global generators while batches are prefetched
(put augmentation randomness in DataLoader workers or seed it per sample).

Example:
    >>> runner = Runner(model, work_dir="runs/a", ..., resume=True)   # latest, if any
    >>> runner.train()
    >>> export_weights("runs/a/epoch_10", "model.safetensors")      # or: python -m engine export
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch.distributed.optim import ZeroRedundancyOptimizer

from engine.checkpoint.checkpoint_files import CheckpointFiles, publish_files, write_files
from engine.checkpoint.data_position import data_seed, loader_length
from engine.checkpoint.export import export_weights
from engine.checkpoint.find import checkpoint_folder, find_latest_checkpoint, read_engine_state
from engine.checkpoint.io import (
    FORMAT,
    LAST,
    VERSION,
    CheckpointError,
    encode,
)
from engine.checkpoint.model_source import describe_model
from engine.checkpoint.model_weights import plain_state_dict
from engine.checkpoint.node_local import gather_rng_states, is_shared
from engine.checkpoint.publish import agree_or_raise
from engine.checkpoint.run_settings import run_settings
from engine.checkpoint.sharded import pop_sharded_entries
from engine.checkpoint.sharded_state import save_shards, shard_layout, shard_model_state
from engine.optim.optim_wrapper_dict import members, named_members

logger = logging.getLogger("engine")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

__all__ = [
    "CheckpointError",
    "at_window_end",
    "checkpoint_folder",
    "export_weights",
    "find_latest_checkpoint",
    "read_engine_state",
    "save_checkpoint",
]


# -- saving --------------------------------------------------------------------------------


def at_window_end(runner: Any) -> bool:
    """True when no accumulation window is open: gradients are zero, so a checkpoint
    taken now resumes exactly. (Windows follow each wrapper's micro-batch count, which is
    ``state.iter`` unless a custom train_step skips a member; the last one ends at the
    run's limit.)"""
    ow, state = runner.optim_wrapper, runner.state
    if ow is None:
        return True
    if state.iter == state.total_iters(loader_length(getattr(runner, "train_dataloader", None))):
        return True
    # Each wrapper's own micro-batch count: a member that does not run every iteration
    # (a GAN's generator with several discriminator steps) has its own window phase.
    return all(w.inner_count % w.accumulative_counts == 0 for w in members(ow))


def save_checkpoint(
    runner: Any,
    name: str,
    *,
    update_last: bool = True,
    resumable: bool = True,
    writer: Any = None,
) -> Path:
    """Write a checkpoint of `runner` to ``work_dir/<name>/``, atomically.

    Call it on every process (model-parallel state and per-process RNG files need all of
    them); the main process writes the shared files. Hooks get ``before_save_checkpoint``
    with the engine-state dict, to which they may add JSON values and tensors.

    Args:
        runner: a `Runner` (or anything with its attributes: state, hooks, optim_wrapper,
            accelerator, work_dir, model, _raw_model, train_dataloader).
        name: the folder name, e.g. ``'iter_400'``; an existing folder of that name is replaced.
        update_last: point ``work_dir/last_checkpoint`` at it (periodic saves do).
        resumable: also write the optimizer and RNG states (best checkpoints do not).
        writer: an idle `engine.checkpoint.async_writer.AsyncWriter`: the main process
            copies the state and returns while the writer's thread writes and publishes
            the folder (``writer.wait`` raises its errors); None writes before returning.

    Returns:
        The checkpoint folder (with a `writer`: once published).

    Example:
        >>> save_checkpoint(runner, f"iter_{runner.iter}")   # e.g. from a SIGTERM handler
    """
    work_dir = work_dir_of(runner)
    if not _NAME.match(name) or name == LAST:
        raise ValueError(f"checkpoint name {name!r} is invalid; use letters, digits, '_', '-', '.'")
    acc = runner.accelerator
    if resumable and not at_window_end(runner):
        logger.warning(
            "Saving %s inside an accumulation window (iteration %d): the window's gradients are "
            "not saved, so a run resumed from it is not exact.",
            name,
            runner.state.iter,
        )
    checkpoint = {
        "format": FORMAT,
        "version": VERSION,
        "train_state": runner.state.state_dict(),
        "hooks": _hook_states(runner),
        "meta": _meta(runner, resumable),
    }
    # As in MMEngine, hooks see (and may replace) the model weights as checkpoint["state_dict"]:
    # EMAHook puts the evaluated (averaged) weights there. Sharded: each process's shards.
    sharded = shard_layout(runner._raw_model) is not None
    if writer is not None:
        writer.check(runner._raw_model)  # before any work: what cannot be saved in the background
    raw = runner._raw_model
    checkpoint["state_dict"] = shard_model_state(raw) if sharded else _model_state_dict(runner)
    runner.hooks.call("before_save_checkpoint", runner, checkpoint=checkpoint)
    model_state = checkpoint.pop("state_dict")
    entries = pop_sharded_entries(checkpoint) if sharded else {}  # hook states of DTensors
    tensors: dict[str, torch.Tensor] = {}
    payload = encode(checkpoint, tensors, "checkpoint")

    # Every process's generators, written by the main process: the folder is complete on
    # its disk whether or not the others share it (see engine.checkpoint.node_local).
    rng_states = gather_rng_states(acc) if resumable else []

    final, tmp = work_dir / name, work_dir / f".tmp_{name}"
    error = None
    try:
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
    except Exception as err:
        error = err
    agree_or_raise(acc, error, tmp, name, work_dir)  # also the barrier before writing
    if sharded:  # every process writes its own shards; none gathers the model
        if not is_shared(acc, work_dir):
            raise CheckpointError(
                f"a sharded checkpoint needs a work_dir that every process sees; {work_dir} is "
                "local to each machine: put work_dir on a shared file system"
            )
        try:
            optimizers = _optimizers(runner) if resumable else {}
            save_shards(tmp, raw, optimizers, model_state, entries)
        except Exception as err:
            error = err
        agree_or_raise(acc, error, tmp, name, work_dir)
    files = None
    try:
        optimizer = runner.optim_wrapper if resumable and not sharded else None
        optim_state = None
        # A ZeroRedundancyOptimizer holds a share of its state on each process and gathers
        # it in state_dict(), a collective: then every process asks (the main one keeps it).
        if optimizer is not None and (acc.is_main_process or _holds_zero(optimizer)):
            optim_state = optimizer.state_dict()
        if acc.is_main_process:
            files = CheckpointFiles(
                work_dir,
                name,
                model=None if sharded else model_state,
                about={} if sharded else describe_model(runner._raw_model, runner_config(runner)),
                optimizer=optim_state,
                tensors=tensors,
                payload=payload,
                rng_states=rng_states,
                update_last=update_last,
            )
            if writer is None:
                write_files(files)
        if writer is not None:  # the main process copies the state, a thread writes it
            writer.submit(acc, work_dir, name, files)
    except Exception as err:
        error = err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    agree_or_raise(acc, error, tmp, name, work_dir)
    if writer is not None:
        return final
    try:
        if acc.is_main_process:
            publish_files(files)
    except Exception as err:
        error = err
    agree_or_raise(acc, error, tmp, name, work_dir)
    return final


def runner_config(runner: Any) -> dict | None:
    """The run's config (``Runner(cfg=...)``) as a dict, or None."""
    cfg = getattr(runner, "run_config", None)
    return cfg if isinstance(cfg, dict) else None


def work_dir_of(runner: Any) -> Path:
    if getattr(runner, "work_dir", None) is None:
        raise ValueError("checkpoints need a work_dir; pass Runner(work_dir=...)")
    return Path(runner.work_dir)


def stateful_hooks(runner: Any) -> dict[str, Any]:
    """Stateful hooks by a stable name: the class name, '#2', '#3'... for repeats."""
    named: dict[str, Any] = {}
    for hook in runner.hooks:
        if callable(getattr(hook, "state_dict", None)):
            base, n = type(hook).__name__, 1
            while (f"{base}#{n}" if n > 1 else base) in named:
                n += 1
            named[f"{base}#{n}" if n > 1 else base] = hook
    return named


def _hook_states(runner: Any) -> dict[str, Any]:
    return {name: hook.state_dict() for name, hook in stateful_hooks(runner).items()}


def _meta(runner: Any, resumable: bool) -> dict[str, Any]:
    acc = runner.accelerator
    first = members(runner.optim_wrapper)[0]
    return {
        "resumable": resumable,
        "num_processes": acc.num_processes,
        "train_batches": loader_length(getattr(runner, "train_dataloader", None)),
        "data_seed": data_seed(getattr(runner, "train_dataloader", None)),
        "seed": (getattr(runner, "randomness", None) or {}).get("seed"),
        "accumulative_counts": getattr(first, "accumulative_counts", None),
        "mixed_precision": str(acc.mixed_precision),
        "torch": torch.__version__,
        "settings": run_settings(runner),  # a resumed run reports what it changed
    }


# -- the model's weights -------------------------------------------------------------------
def check_supported(accelerator: Any) -> None:
    """Refuse, before training, what engine cannot checkpoint. Sharded models save their
    shards (`engine.checkpoint.sharded_state`): FSDP1/FSDP2 through DCP, DeepSpeed through
    its engine, which exists only when Accelerate prepared the model with its optimizer."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.DEEPSPEED and (
        getattr(accelerator, "deepspeed_engine_wrapped", None) is None
    ):
        raise NotImplementedError(
            "engine checkpoints of a DeepSpeed run save through the DeepSpeed engine, which "
            "Accelerate builds when it prepares the model with its optimizer: use "
            "model_wrapper=None with an optim_wrapper, or model_wrapper='fsdp2' without DeepSpeed"
        )


def _holds_zero(optim_wrapper: Any) -> bool:
    """Whether a member of `optim_wrapper` steps a ZeroRedundancyOptimizer (perhaps inside
    Accelerate's optimizer wrapper)."""
    return any(
        isinstance(getattr(w.optimizer, "optimizer", w.optimizer), ZeroRedundancyOptimizer)
        for w in members(optim_wrapper)
    )


def _optimizers(runner: Any) -> dict[str, torch.optim.Optimizer]:
    """The run's torch optimizers by member name, for sharded saves and loads."""
    if runner.optim_wrapper is None:
        return {}
    return {name: w.optimizer for name, w in named_members(runner.optim_wrapper).items()}


def _model_state_dict(runner: Any) -> dict[str, torch.Tensor]:
    check_supported(runner.accelerator)
    return plain_state_dict(runner._raw_model)

"""Save and export checkpoints: a checkpoint is a folder in ``work_dir``.

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

``work_dir/last_checkpoint`` holds the name of the newest periodic checkpoint. Best
checkpoints (``best_<metric>/``) hold weights and engine_state.json only: they are for
evaluation and `load_from`, not for resuming.

A save writes into ``work_dir/.tmp_<name>/``, fsyncs every file, renames the folder to its
name (an older folder of that name is moved aside first and deleted after), and only then
rewrites ``last_checkpoint``. A crash at any point leaves the previous checkpoint and the
pointer to it intact; leftovers are cleaned when a run resumes (`engine.resume`), which
reads all of this back. Weights alone load with `engine.model_weights.load_weights`.

Exactness of resume (bit-identical weights on CPU): the loops skip consumed batches with
``accelerate.skip_first_batches`` (indices only, nothing is loaded), the schedules are pure
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

from engine import rng
from engine.checkpoint_io import (
    LAST,
    MODEL,
    OPTIMIZER,
    STATE,
    TENSORS,
    CheckpointError,
    decode,
    encode,
    fsync_dir,
    load_tensors,
    read_json,
    save_tensors,
    torch_save,
    write_json,
    write_text_atomic,
)
from engine.hooks import Hook
from engine.model_weights import plain_state_dict

logger = logging.getLogger("engine")

FORMAT, VERSION = "engine.checkpoint", 1
_STATE_EXPECTED = "the engine_state.json that engine.checkpoint.save_checkpoint writes"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

__all__ = [
    "CheckpointError",
    "at_window_end",
    "export_weights",
    "find_latest_checkpoint",
    "read_engine_state",
    "save_checkpoint",
]


# -- saving --------------------------------------------------------------------------------
def at_window_end(runner: Any) -> bool:
    """True when no accumulation window is open: gradients are zero, so a checkpoint
    taken now resumes exactly. (Windows follow ``state.iter``; the last one ends at the
    run's limit.)"""
    ow, state = runner.optim_wrapper, runner.state
    if ow is None:
        return True
    limit = state.max_iters
    if limit is None and state.max_epochs is not None:
        length = loader_length(getattr(runner, "train_dataloader", None))
        limit = None if length is None else state.max_epochs * length
    if state.iter == limit:
        return True
    members = getattr(ow, "optim_wrappers", None)
    return all(state.iter % w.accumulative_counts == 0 for w in (members or {"": ow}).values())


def save_checkpoint(
    runner: Any, name: str, *, update_last: bool = True, resumable: bool = True
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

    Returns:
        The checkpoint folder.

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
    runner.hooks.call("before_save_checkpoint", runner, checkpoint=checkpoint)
    tensors: dict[str, torch.Tensor] = {}
    payload = encode(checkpoint, tensors, "checkpoint")
    model_state = _model_state_dict(runner)

    final, tmp = work_dir / name, work_dir / f".tmp_{name}"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    try:
        if acc.is_main_process:
            _write_model(tmp, model_state)
            if resumable and runner.optim_wrapper is not None:
                _write_optimizer(tmp, runner.optim_wrapper.state_dict())
            if tensors:
                save_tensors(tmp / TENSORS, tensors)
            write_json(tmp / STATE, payload)
        if resumable:
            write_json(tmp / f"rng_state_{acc.process_index}.json", rng.to_json(rng.capture()))
    except OSError as err:
        # A failed write (a full disk) leaves work_dir as it was: no partial folder.
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"saving checkpoint {name!r} in {work_dir} failed ({err.strerror or err}); "
            "the previous checkpoint is intact"
        ) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    acc.wait_for_everyone()
    if acc.is_main_process:
        fsync_dir(tmp)
        _publish(tmp, final)
        if update_last:
            write_text_atomic(work_dir / LAST, name + "\n")
    acc.wait_for_everyone()
    return final


def _write_model(folder: Path, state: dict[str, torch.Tensor]) -> None:
    save_tensors(folder / MODEL, state, metadata={"format": "pt"})


def _write_optimizer(folder: Path, state: dict) -> None:
    torch_save(state, folder / OPTIMIZER)


def _publish(tmp: Path, final: Path) -> None:
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


def work_dir_of(runner: Any) -> Path:
    if getattr(runner, "work_dir", None) is None:
        raise ValueError("checkpoints need a work_dir; pass Runner(work_dir=...)")
    return Path(runner.work_dir)


def stateful_hooks(runner: Any) -> dict[str, Hook]:
    """Stateful hooks by a stable name: the class name, '#2', '#3'... for repeats."""
    named: dict[str, Hook] = {}
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
    members = getattr(runner.optim_wrapper, "optim_wrappers", None)
    first = next(iter(members.values())) if members else runner.optim_wrapper
    return {
        "resumable": resumable,
        "num_processes": acc.num_processes,
        "train_batches": loader_length(getattr(runner, "train_dataloader", None)),
        "data_seed": _data_seed(getattr(runner, "train_dataloader", None)),
        "seed": (getattr(runner, "randomness", None) or {}).get("seed"),
        "accumulative_counts": getattr(first, "accumulative_counts", None),
        "mixed_precision": str(acc.mixed_precision),
        "torch": torch.__version__,
    }


def loader_length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def seedable_sampler(loader: Any) -> Any:
    from accelerate.data_loader import SeedableRandomSampler

    get = getattr(loader, "get_sampler", None)
    sampler = get() if callable(get) else getattr(loader, "sampler", None)
    return sampler if isinstance(sampler, SeedableRandomSampler) else None


def _data_seed(loader: Any) -> int | None:
    sampler = seedable_sampler(loader) if loader is not None else None
    return None if sampler is None else int(sampler.initial_seed)


# -- the model's weights -------------------------------------------------------------------
def check_supported(accelerator: Any) -> None:
    """Engine checkpoints hold whole (unsharded) models and optimizer states: refuse
    FSDP/DeepSpeed runs before training rather than at the first save."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        raise NotImplementedError(
            f"engine checkpoints of sharded ({accelerator.distributed_type.value}) models are not "
            "supported yet; pass default_hooks=dict(checkpoint=None) and use accelerator.save_state"
        )


def _model_state_dict(runner: Any) -> dict[str, torch.Tensor]:
    check_supported(runner.accelerator)
    return plain_state_dict(runner._raw_model)


# -- finding and reading -------------------------------------------------------------------
def read_engine_state(folder: Path) -> dict[str, Any]:
    """engine_state.json of `folder`, checked and decoded (its tensors included)."""
    path = Path(folder) / STATE
    data = read_json(path, _STATE_EXPECTED)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an engine checkpoint state; expected {_STATE_EXPECTED}"
        )
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has format version {data.get('version')!r}; this engine reads version {VERSION}"
        )
    for key in ("train_state", "hooks", "meta"):
        if not isinstance(data.get(key), dict):
            raise CheckpointError(f"{path} lacks the '{key}' object; expected {_STATE_EXPECTED}")
    tensors: dict[str, torch.Tensor] = {}
    if (Path(folder) / TENSORS).exists():
        tensors, _ = load_tensors(Path(folder) / TENSORS, "tensors referenced by engine_state.json")
    try:
        return decode(data, tensors)
    except KeyError as err:
        raise CheckpointError(f"{path} refers to tensor {err} missing from {TENSORS}") from None


def _iter_of(folder: Path) -> int:
    try:
        return int(read_engine_state(folder)["train_state"].get("iter", -1))
    except (CheckpointError, FileNotFoundError, TypeError, ValueError):
        return -1


def find_latest_checkpoint(work_dir: str | Path) -> Path | None:
    """The checkpoint `last_checkpoint` names; if that is missing or broken, the periodic
    checkpoint folder with the most iterations. None when there is none."""
    work_dir = Path(work_dir)
    pointer = work_dir / LAST
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        folder = Path(name) if Path(name).is_absolute() else work_dir / name
        if (folder / STATE).is_file() and (folder / OPTIMIZER).is_file():
            return folder
        logger.warning(
            "%s names %s, which is not a complete checkpoint; scanning %s", pointer, name, work_dir
        )
    candidates = [
        p
        for p in (work_dir.iterdir() if work_dir.is_dir() else [])
        if p.is_dir() and not p.name.startswith((".", "best_")) and (p / STATE).is_file()
    ]
    ranked = [(_iter_of(p), p.stat().st_mtime, p) for p in candidates]
    ranked = [r for r in ranked if r[0] >= 0]
    return max(ranked)[2] if ranked else None


def checkpoint_folder(path: str | Path, what: str) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(
            f"{what} {str(path)!r} does not exist; expected a checkpoint folder with {STATE}"
        )
    if not folder.is_dir():
        raise CheckpointError(
            f"{what} {str(path)!r} is a file; expected a checkpoint folder (e.g. work_dir/epoch_3)"
        )
    return folder


def export_weights(checkpoint: str | Path, out: str | Path, dtype: str | None = None) -> Path:
    """Write a checkpoint's model weights alone to one safetensors file, for inference.

    Load it with ``safetensors.torch.load_model(model, out)`` (which re-ties shared
    weights) or ``Runner(load_from=out)``.

    Args:
        checkpoint: a checkpoint folder, or a work_dir (its latest checkpoint).
        out: the ``.safetensors`` file to write (replaced atomically if it exists).
        dtype: ``'float16'``/``'bfloat16'``/``'float32'`` to cast floating tensors; None keeps them.

    Returns:
        `out` as a Path.
    """
    folder = checkpoint_folder(checkpoint, "checkpoint")
    if not (folder / MODEL).is_file():
        latest = find_latest_checkpoint(folder)
        if latest is None:
            raise FileNotFoundError(
                f"{folder} has no {MODEL} and no checkpoint folder; expected a checkpoint or a work_dir"
            )
        folder = latest
    tensors, _ = load_tensors(folder / MODEL, "the model weights of an engine checkpoint")
    if dtype is not None:
        cast = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}.get(
            dtype
        )
        if cast is None:
            raise ValueError(
                f"dtype {dtype!r} is unknown; accepted: 'float16', 'bfloat16', 'float32'"
            )
        cast_once: dict[int, torch.Tensor] = {}  # tied weights stay tied after the cast
        for k, v in tensors.items():
            if v.is_floating_point():
                tensors[k] = cast_once[id(v)] = cast_once.get(id(v), v.to(cast))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_tensors(tmp, tensors, metadata={"format": "pt", "source": str(folder)})
    tmp.replace(out)
    return out

"""Find a checkpoint and read its engine state: what resuming, retention and export share.

`find_latest_checkpoint` follows ``work_dir/last_checkpoint`` and, when that pointer is
missing or names a broken folder, falls back to the periodic checkpoint with the most
iterations. `read_engine_state` checks ``engine_state.json`` against the format that
`engine.checkpoint.save.save_checkpoint` writes and decodes it, tensors included.

Example:
    >>> folder = find_latest_checkpoint("work_dirs/demo")        # None if there is none
    >>> read_engine_state(folder)["train_state"]["iter"]
    400
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint import manifest
from engine.checkpoint.io import (
    FORMAT,
    LAST,
    OPTIMIZER,
    STATE,
    TENSORS,
    VERSION,
    CheckpointError,
    decode,
    load_tensors,
    read_json,
)
from engine.checkpoint.sharded import has_sharded_state

logger = logging.getLogger("engine")

_STATE_EXPECTED = "the engine_state.json that engine.checkpoint.save.save_checkpoint writes"


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
    _check_types(path, data["train_state"], _TRAIN_STATE_TYPES, "train_state")
    _check_types(path, data["meta"], _META_TYPES, "meta")
    tensors: dict[str, torch.Tensor] = {}
    if (Path(folder) / TENSORS).exists():
        tensors, _ = load_tensors(Path(folder) / TENSORS, "tensors referenced by engine_state.json")
    try:
        return decode(data, tensors)
    except KeyError as err:
        raise CheckpointError(f"{path} refers to tensor {err} missing from {TENSORS}") from None


_INT, _OPT_INT = ("an int", (int,)), ("an int or null", (int, type(None)))
_TRAIN_STATE_TYPES = {
    "epoch": _INT, "iter": _INT, "step": _INT, "inner_iter": _INT,
    "max_epochs": _OPT_INT, "max_iters": _OPT_INT,
    "best_scores": ("an object of numbers", (dict,)), "should_stop": ("true or false", (bool,)),
}  # fmt: skip
_META_TYPES = {
    "resumable": ("true or false", (bool,)), "num_processes": _OPT_INT,
    "train_batches": _OPT_INT, "data_seed": _OPT_INT, "seed": _OPT_INT,
    "accumulative_counts": _OPT_INT,
}  # fmt: skip


def _check_types(path: Path, values: dict, types: dict, where: str) -> None:
    """A one-line `CheckpointError` for the first value of `values` of the wrong type."""
    for key, (name, accepted) in types.items():
        if key not in values:
            continue
        value = values[key]
        wrong = not isinstance(value, accepted) or (
            isinstance(value, bool) and bool not in accepted
        )
        if key == "best_scores" and not wrong:
            wrong = not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
            )
        if wrong:
            raise CheckpointError(
                f"{path}: {where}.{key} is {value!r} ({type(value).__name__}); expected {name}"
            )


def _iter_of(folder: Path) -> int:
    """The iteration count in `folder`'s state file, -1 if unreadable (JSON only: ranking
    must not read the tensors of every folder)."""
    try:
        data = read_json(Path(folder) / STATE, _STATE_EXPECTED)
        value = data["train_state"]["iter"]
    except (CheckpointError, FileNotFoundError, KeyError, TypeError):
        return -1
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _pointed(work_dir: Path) -> Path | None:
    """The folder ``last_checkpoint`` names, None (with a warning) if it names none."""
    pointer = work_dir / LAST
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_bytes().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        logger.warning("%s is not a UTF-8 folder name; scanning %s instead", pointer, work_dir)
        return None
    if not name or "\x00" in name or "\n" in name:
        logger.warning("%s names no folder (%r); scanning %s instead", pointer, name, work_dir)
        return None
    folder = Path(name) if Path(name).is_absolute() else work_dir / name
    if not (folder / STATE).is_file() or not _has_optimizer_state(folder):
        logger.warning(
            "%s names %r, which is not a complete checkpoint; scanning %s", pointer, name, work_dir
        )
        return None
    return folder


def _has_optimizer_state(folder: Path) -> bool:
    """Whether `folder` holds optimizer state: optimizer.pt, or DCP shards (sharded runs)."""
    return (folder / OPTIMIZER).is_file() or has_sharded_state(folder)


def _problem(folder: Path) -> str | None:
    """Why `folder` cannot be resumed (its manifest or state file), None if it can."""
    problem = manifest.is_intact(folder)
    if problem is None:
        try:
            read_engine_state(folder)
        except (CheckpointError, FileNotFoundError) as err:
            problem = str(err)
    return problem


def find_latest_checkpoint(work_dir: str | Path, verify: bool = True) -> Path | None:
    """The newest intact checkpoint in `work_dir`, None when there is none.

    The folder `last_checkpoint` names comes first; if the pointer is missing, unreadable or
    names no checkpoint, the periodic folders are ranked by their iteration count. With
    `verify` each candidate is checked against its manifest (`engine.checkpoint.manifest`)
    and a broken one is skipped for the next, with one warning naming the broken file.
    """
    work_dir = Path(work_dir)
    candidates = [
        p
        for p in (work_dir.iterdir() if work_dir.is_dir() else [])
        if p.is_dir() and not p.name.startswith((".", "best_")) and (p / STATE).is_file()
    ]
    ranked = [(_iter_of(p), p.stat().st_mtime, p) for p in candidates]
    ordered = [p for it, _, p in sorted(ranked, reverse=True) if it >= 0]
    pointed = _pointed(work_dir)
    if pointed is not None:
        ordered = [pointed, *(p for p in ordered if p.resolve() != pointed.resolve())]
    for folder in ordered:
        if _has_optimizer_state(folder) or not verify:
            problem = _problem(folder) if verify else None
            if problem is None:
                return folder
            logger.warning("Skipping checkpoint %s: %s", folder.name, problem)
    return None


def checkpoint_folder(path: str | Path, what: str) -> Path:
    """`path` as a Path if it is a folder, else a one-line error naming `what` it was for."""
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

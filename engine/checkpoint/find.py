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

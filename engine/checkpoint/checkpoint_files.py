"""What the main process writes into a checkpoint folder, held as one value until written.

`engine.checkpoint.save.save_checkpoint` gathers everything a checkpoint holds (weights,
optimizer state, engine state, random states) into a `CheckpointFiles`; `write_files` here
puts them into the temporary folder, manifest last, and `publish_files` renames the folder
into place. A synchronous save does both at once; an asynchronous one
(`engine.checkpoint.async_writer`) copies the tensors first and does both in a thread.

Example:
    >>> files = CheckpointFiles(Path("runs/a"), "iter_4", model, {}, optimizer, {}, payload)
    >>> files.tmp, files.final
    (PosixPath('runs/a/.tmp_iter_4'), PosixPath('runs/a/iter_4'))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint.io import (
    LAST,
    MODEL,
    OPTIMIZER,
    STATE,
    TENSORS,
    fsync_dir,
    save_tensors,
    torch_save,
    write_json,
    write_text_atomic,
)
from engine.checkpoint.manifest import write_manifest
from engine.checkpoint.publish import publish


@dataclass
class CheckpointFiles:
    """What the main process writes for checkpoint `name` (None: that file is not written).

    Args:
        work_dir: the run's work_dir.
        name: the checkpoint's folder name.
        model: the weights by plain name (None for a sharded model, whose shards every
            process has written already).
        about: safetensors metadata that rebuilds the model (`engine.checkpoint.model_source`).
        optimizer: ``OptimWrapper(Dict).state_dict()`` (None: not resumable, or sharded).
        tensors: the tensors that `payload` refers to (`engine.checkpoint.io.encode`).
        payload: engine_state.json's content.
        rng_states: every process's random state, in process order.
        update_last: point ``work_dir/last_checkpoint`` at the folder once it is published.
    """

    work_dir: Path
    name: str
    model: dict[str, torch.Tensor] | None
    about: dict[str, str]
    optimizer: dict | None
    tensors: dict[str, torch.Tensor]
    payload: Any
    rng_states: list[dict] = field(default_factory=list)
    update_last: bool = True

    @property
    def tmp(self) -> Path:
        """The folder the files are written into."""
        return self.work_dir / f".tmp_{self.name}"

    @property
    def final(self) -> Path:
        """The folder's name once published."""
        return self.work_dir / self.name


def write_files(files: CheckpointFiles) -> None:
    """Write `files` into ``files.tmp`` (which exists), each file fsynced, the manifest last."""
    tmp = files.tmp
    if files.model is not None:
        _write_model(tmp, files.model, files.about)
    if files.optimizer is not None:
        _write_optimizer(tmp, files.optimizer)
    if files.tensors:
        save_tensors(tmp / TENSORS, files.tensors)
    write_json(tmp / STATE, files.payload)
    for rank, state in enumerate(files.rng_states):
        write_json(tmp / f"rng_state_{rank}.json", state)
    write_manifest(tmp)  # last: a folder with a valid manifest was written whole


def publish_files(files: CheckpointFiles) -> None:
    """Rename ``files.tmp`` to ``files.final``; then, if asked, point ``last_checkpoint`` at it."""
    fsync_dir(files.tmp)
    publish(files.tmp, files.final)
    if files.update_last:
        write_text_atomic(files.work_dir / LAST, files.name + "\n")


def _write_model(folder: Path, state: dict[str, torch.Tensor], about: dict[str, str]) -> None:
    # `about`: what rebuilds the model for inference (engine.checkpoint.model_source)
    save_tensors(folder / MODEL, state, metadata={"format": "pt", **about})


def _write_optimizer(folder: Path, state: dict) -> None:
    torch_save(state, folder / OPTIMIZER)

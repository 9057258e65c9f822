"""A DeepSpeed engine's state in an engine checkpoint folder: DeepSpeed's own per-rank files.

Under ZeRO the fp32 master weights and the optimizer states live in DeepSpeed's partitions,
not in the module's parameters, so only DeepSpeed can save and restore them. Every process
calls the engine's ``save_checkpoint`` into ``<checkpoint>/deepspeed/state/`` (one file per
rank and kind), inside engine's temporary folder; engine's JSON state, RNG files and
manifest (which lists these files) are written around it and the folder is published
atomically, as for any checkpoint. Resume calls the engine's ``load_checkpoint`` with the same
process count. Export, and ``load_from`` into a run without DeepSpeed, consolidate the
partitions on the CPU with DeepSpeed's ``zero_to_fp32`` (DeepSpeed must be installed, no
process group needed).

Not run in this repository's tests (DeepSpeed needs a GPU): bench/gpu_check.sh runs it.

Example:
    >>> save_deepspeed(tmp_folder, engine)                  # on every process
    >>> load_deepspeed(folder, engine, with_optimizer=True)  # same process count
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.checkpoint.io import CheckpointError
from engine.model.base_model import wrapper_of

DEEPSPEED = "deepspeed"  # the folder inside a checkpoint
TAG = "state"  # DeepSpeed's checkpoint tag: deepspeed/state/


def deepspeed_engine(model: nn.Module) -> nn.Module | None:
    """The DeepSpeed engine that Accelerate built around `model` (the unwrapped model, or
    the engine itself), or None."""
    for candidate in (model, wrapper_of(model)):
        if candidate is not None and type(candidate).__name__ == "DeepSpeedEngine":
            return candidate
    return None


def has_deepspeed_state(folder: Path) -> bool:
    """Whether the checkpoint `folder` holds a DeepSpeed engine's files."""
    return (Path(folder) / DEEPSPEED / TAG).is_dir()


def save_deepspeed(folder: Path, engine: Any) -> None:
    """Write `engine`'s partitions (weights, optimizer) into ``folder/deepspeed``; every process."""
    engine.save_checkpoint(
        str(Path(folder) / DEEPSPEED), tag=TAG, client_state={}, save_latest=False
    )


def load_deepspeed(
    folder: Path, engine: Any, *, with_optimizer: bool, saved_processes: int | None
) -> None:
    """Load ``folder/deepspeed`` into `engine` (and its optimizer when `with_optimizer`);
    every process.

    Raises:
        CheckpointError: another process count than the one that saved (for the optimizer
            partitions), or DeepSpeed found nothing to load.
    """
    here = int(torch.distributed.get_world_size()) if torch.distributed.is_initialized() else 1
    if with_optimizer and saved_processes not in (None, here):
        raise CheckpointError(
            f"{folder} holds DeepSpeed partitions of {saved_processes} processes and this run "
            f"has {here}: resume with {saved_processes}, or convert it with DeepSpeed's "
            "ds_to_universal.py and load it with its load_universal setting, or export the "
            "weights (python -m engine export) and pass load_from"
        )
    path, _ = engine.load_checkpoint(
        str(Path(folder) / DEEPSPEED),
        tag=TAG,
        load_module_strict=True,
        load_optimizer_states=with_optimizer,
        load_lr_scheduler_states=False,
        load_module_only=not with_optimizer,
    )
    if path is None:
        raise CheckpointError(f"DeepSpeed found no checkpoint to load in {folder / DEEPSPEED}")


def consolidated_deepspeed_state(folder: Path) -> dict[str, torch.Tensor]:
    """The whole fp32 model state dict of a DeepSpeed checkpoint, read in this process."""
    try:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    except ImportError:
        raise CheckpointError(
            f"{folder} holds DeepSpeed partitions; reading them needs DeepSpeed: "
            "pip install deepspeed (no GPU needed), or run the export under the DeepSpeed launch"
        ) from None
    state = get_fp32_state_dict_from_zero_checkpoint(str(Path(folder) / DEEPSPEED), tag=TAG)
    return {key: value.contiguous() for key, value in state.items()}


def refuse_whole_weights(model: nn.Module, source: Any) -> None:
    """Refuse to load whole weights into a DeepSpeed model: its optimizer keeps its own fp32
    copy of the weights (and ZeRO-3 partitions them), so the update would start from the old
    ones."""
    if deepspeed_engine(model) is not None:
        raise CheckpointError(
            f"{source} holds whole weights, which a model that DeepSpeed prepared cannot take "
            "(its optimizer keeps its own copy): load them into the model before building the "
            "Runner (model.load_state_dict(...)), or resume from a checkpoint of a DeepSpeed run"
        )

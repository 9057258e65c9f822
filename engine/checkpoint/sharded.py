"""Sharded model and optimizer states in a checkpoint folder, through torch.distributed.checkpoint.

A model sharded by FSDP2 (``model_wrapper='fsdp2'``, or Accelerate's FSDP2) holds DTensor
parameters. Its checkpoint keeps engine's folder, JSON state and atomic publication, but the
weights and optimizer states go to ``<checkpoint>/sharded/`` as DCP files: every process
writes its own shards, none gathers the full model. Loading reshards: a checkpoint written
by N processes loads into M processes, or into one process and an unsharded model, because
DCP reads by each tensor's global offsets. Export consolidates the shards in one process
with no process group.

Example:
    >>> save_sharded(folder, model, {"optimizer": optimizer})      # on every process
    >>> load_sharded(folder, model, {"optimizer": optimizer})      # any process count
    >>> weights = consolidated_model_state(folder)                 # one process, for export
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

SHARDED = "sharded"  # the DCP folder inside a checkpoint folder


def is_sharded(model: nn.Module) -> bool:
    """Whether any parameter of `model` is a DTensor (FSDP2, tensor parallelism)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def has_sharded_state(folder: Path) -> bool:
    """Whether the checkpoint `folder` holds its weights as DCP shards."""
    return (Path(folder) / SHARDED / ".metadata").is_file()


def _states(model: nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    state = {"model": get_model_state_dict(model)}
    for name, optimizer in optimizers.items():
        state[f"optimizer.{name}"] = get_optimizer_state_dict(model, optimizer)
    return state


def save_sharded(
    folder: Path, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer]
) -> None:
    """Write `model`'s and the `optimizers`' states into ``folder/sharded``; call on every
    process (it is a collective when a process group exists)."""
    import torch.distributed.checkpoint as dcp

    dcp.save(_states(model, optimizers), checkpoint_id=str(Path(folder) / SHARDED))


def load_sharded(
    folder: Path, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer]
) -> None:
    """Load ``folder/sharded`` into `model` and the `optimizers`, resharding to this run's
    processes (sharded or not); call on every process.

    Raises:
        KeyError: an optimizer name that the checkpoint does not hold.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    state = _states(model, optimizers)
    dcp.load(state, checkpoint_id=str(Path(folder) / SHARDED))
    set_model_state_dict(model, state["model"])
    for name, optimizer in optimizers.items():
        set_optimizer_state_dict(model, optimizer, state[f"optimizer.{name}"])


def consolidated_model_state(folder: Path) -> dict[str, torch.Tensor]:
    """The whole model state dict of a sharded checkpoint, read in this process alone
    (no process group, none of the processes that wrote it)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "full.pt"
        dcp_to_torch_save(str(Path(folder) / SHARDED), str(out))
        full = torch.load(out, map_location="cpu", weights_only=True)
    return {key: value.contiguous() for key, value in full["model"].items()}

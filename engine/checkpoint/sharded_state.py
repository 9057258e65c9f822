"""Which sharded layout a model's checkpoint takes, and saving, loading, exporting it.

Three kinds of model keep their state in shards, one per process; none is gathered to save:

* DTensor parameters (``model_wrapper='fsdp2'``, Accelerate's FSDP2): DCP files in
  ``<checkpoint>/sharded/`` (`engine.checkpoint.sharded`), given the model itself.
* FSDP version 1 (Accelerate's FSDP1 around the whole model, or around children): the same
  DCP files, given the outermost FSDP module (found through the wrapper that Accelerate's
  preparation attached to the model) or the model holding FSDP children. DCP writes FSDP1's
  sharded state with the model's plain keys, so a checkpoint of either kind loads into the
  other, into another process count, or into one process, and exports the same way.
* A DeepSpeed engine: DeepSpeed's own files in ``<checkpoint>/deepspeed/``
  (`engine.checkpoint.deepspeed_state`).

The functions take the unwrapped model (``runner._raw_model``), as `engine.checkpoint.sharded`
does, and keep its names' meaning for every layout.

Example:
    >>> if shard_layout(model):                                   # on every process
    ...     save_shards(tmp, model, {"optimizer": optimizer})
    >>> load_shards(folder, model, {"optimizer": optimizer})      # resume
    >>> weights = consolidated_state(folder)                      # one process, for export
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.checkpoint import deepspeed_state as ds
from engine.checkpoint.find import read_engine_state
from engine.checkpoint.io import CheckpointError
from engine.checkpoint.sharded import (
    consolidated_model_state,
    has_sharded_state,
    is_sharded,
    load_sharded,
    save_sharded,
    sharded_model_state,
)
from engine.model.base_model import wrapper_of
from engine.optim.sharded_clip import fsdp1_roots

DCP, DEEPSPEED = "dcp", "deepspeed"


def dcp_module(model: nn.Module) -> nn.Module | None:
    """The module whose state DCP saves for the unwrapped `model`, or None when whole."""
    if is_sharded(model):  # DTensors (FSDP2)
        return model
    wrapper = wrapper_of(model)  # whole-model FSDP1: its root maps the model's plain keys
    roots = fsdp1_roots([wrapper]) if wrapper is not None else []
    if len(roots) == 1:
        return roots[0]
    return model if fsdp1_roots([model]) else None  # FSDP1 children ('separate')


def shard_layout(model: nn.Module) -> str | None:
    """``'dcp'``, ``'deepspeed'``, or None for a whole model (``model.safetensors``)."""
    if ds.deepspeed_engine(model) is not None:
        return DEEPSPEED
    return DCP if dcp_module(model) is not None else None


def has_shards(folder: Path) -> bool:
    """Whether the checkpoint `folder` holds its model in shards (DCP or DeepSpeed)."""
    return has_sharded_state(folder) or ds.has_deepspeed_state(folder)


def shard_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state as a sharded checkpoint holds it (what hooks see as
    ``checkpoint['state_dict']``): each process's DCP shards; nothing under DeepSpeed, whose
    engine saves the model itself."""
    if ds.deepspeed_engine(model) is not None:
        return {}
    return sharded_model_state(dcp_module(model) or model)


def save_shards(
    folder: Path,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    model_state: dict[str, torch.Tensor] | None = None,
    entries: dict[str, dict] | None = None,
) -> None:
    """Write `model`'s (and `optimizers`') shards into `folder`; call on every process.
    `model_state` and `entries`: as `engine.checkpoint.sharded.save_sharded` (an EMA's)."""
    engine = ds.deepspeed_engine(model)
    if engine is None:
        target = dcp_module(model) or model
        if not is_sharded(model) and fsdp1_roots([target]):  # FSDP1
            _refuse_whole_state_of_fsdp1(model_state)
        save_sharded(folder, target, optimizers, model_state, entries)
        return
    if model_state or entries:
        raise CheckpointError(
            "a hook (an EMAHook) put its own weights into the checkpoint of a DeepSpeed run, "
            "whose engine saves only its own state: remove the hook, or train with "
            "model_wrapper='fsdp2' or DDP, where averaged models are saved"
        )
    ds.save_deepspeed(folder, engine)  # DeepSpeed saves its optimizer with the model


def load_shards(
    folder: Path, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer]
) -> None:
    """Load `folder`'s shards into `model` (and `optimizers`; none: the weights only),
    resharding DCP checkpoints to this run's processes; call on every process.

    Raises:
        CheckpointError: a layout this run cannot take, in one line with what to do instead.
    """
    engine = ds.deepspeed_engine(model)
    if ds.has_deepspeed_state(folder):
        if engine is not None:
            saved = read_engine_state(folder)["meta"].get("num_processes")
            ds.load_deepspeed(
                folder, engine, with_optimizer=bool(optimizers), saved_processes=saved
            )
            return
        if optimizers:
            raise CheckpointError(
                f"{folder} holds DeepSpeed partitions and this run does not use DeepSpeed: "
                "resume it under the same DeepSpeed launch, or export the weights "
                "(python -m engine export) and pass load_from"
            )
        _load_whole(model, ds.consolidated_deepspeed_state(folder), folder)
        return
    if engine is not None:
        raise CheckpointError(
            f"{folder} holds DCP shards (FSDP, model_wrapper='fsdp2'), which a DeepSpeed run "
            "cannot resume: export the weights (python -m engine export) and load them into "
            "the model before building the Runner"
        )
    load_sharded(folder, dcp_module(model) or model, optimizers)


def consolidated_state(folder: Path) -> dict[str, torch.Tensor]:
    """The whole model state dict of a sharded checkpoint, read in this process alone."""
    if ds.has_deepspeed_state(folder):
        return ds.consolidated_deepspeed_state(folder)
    return consolidated_model_state(folder)


def _refuse_whole_state_of_fsdp1(model_state: dict | None) -> None:
    """FSDP1's own sharded state holds ShardedTensors (or DTensors); weights that a hook put
    in its place without any (an EMA of the flattened local shards) cannot be saved."""
    from torch.distributed._shard.sharded_tensor import ShardedTensor
    from torch.distributed.tensor import DTensor

    if model_state and not any(
        isinstance(v, ShardedTensor | DTensor) for v in model_state.values()
    ):
        raise CheckpointError(
            "a hook (an EMAHook) put unsharded weights into the checkpoint of an FSDP1 model, "
            "whose parameters are flattened shards: remove the hook, or use FSDP2 "
            "(--fsdp_version 2 or model_wrapper='fsdp2'), whose averaged models are sharded"
        )


def _load_whole(model: nn.Module, state: dict[str, torch.Tensor], folder: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{folder} does not fit this model: {str(err).splitlines()[0]}"
        ) from None

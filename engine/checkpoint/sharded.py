"""Sharded model and optimizer states in a checkpoint folder, through torch.distributed.checkpoint.

A model sharded by FSDP2 (``model_wrapper='fsdp2'``, or Accelerate's FSDP2) holds DTensor
parameters. Its checkpoint keeps engine's folder, JSON state and atomic publication, but the
weights and optimizer states go to ``<checkpoint>/sharded/`` as DCP files: every process
writes its own shards, none gathers the full model. Loading reshards: a checkpoint written
by N processes loads into M processes, or into one process and an unsharded model, because
DCP reads by each tensor's global offsets. Export consolidates the shards in one process
with no process group.

Hook states that hold DTensors (EMAHook's averaged model) go into the same DCP files under
their checkpoint key; engine_state.json keeps a marker in their place, which resume turns
into a `ShardedEntry` that the hook reads into its own shardings.

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

from engine.checkpoint.io import CheckpointError

SHARDED = "sharded"  # the DCP folder inside a checkpoint folder
_MARKER = "sharded_checkpoint_key"  # engine_state.json: {_MARKER: key} stands for DCP state


def is_sharded(model: nn.Module) -> bool:
    """Whether any parameter of `model` is a DTensor (FSDP2, tensor parallelism)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def has_sharded_state(folder: Path) -> bool:
    """Whether the checkpoint `folder` holds its weights as DCP shards."""
    return (Path(folder) / SHARDED / ".metadata").is_file()


def sharded_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s state dict as DCP saves it: each process's DTensor shards, plain names."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model)


def _states(model: nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    state = {"model": sharded_model_state(model)}
    for name, optimizer in optimizers.items():
        state[f"optimizer.{name}"] = get_optimizer_state_dict(model, optimizer)
    return state


def save_sharded(
    folder: Path,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    model_state: dict[str, torch.Tensor] | None = None,
    entries: dict[str, dict] | None = None,
) -> None:
    """Write `model`'s and the `optimizers`' states into ``folder/sharded``; call on every
    process (it is a collective when a process group exists).

    Args:
        folder: the checkpoint folder being written.
        model, optimizers: the run's sharded model and its optimizers by name.
        model_state: the weights to save as the model's (default: the model's own; EMAHook
            puts the averaged ones there, as in engine's unsharded checkpoints).
        entries: further states by checkpoint key (`pop_sharded_entries`).
    """
    import torch.distributed.checkpoint as dcp

    state = _states(model, optimizers)
    if model_state is not None:
        state["model"] = model_state
    state.update(entries or {})
    dcp.save(state, checkpoint_id=str(Path(folder) / SHARDED))


def pop_sharded_entries(checkpoint: dict) -> dict[str, dict]:
    """Take out of `checkpoint` (the engine-state dict that hooks filled) every top-level
    dict that holds DTensors, leaving a marker in its place; returns them by key, for
    `save_sharded`."""
    from torch.distributed.tensor import DTensor

    taken = {
        key: value
        for key, value in checkpoint.items()
        if isinstance(value, dict) and any(isinstance(v, DTensor) for v in value.values())
    }
    for key in taken:
        checkpoint[key] = {_MARKER: key}
    return taken


class ShardedEntry:
    """A state saved in a checkpoint's DCP shards (see `pop_sharded_entries`), read on
    demand into the reader's own tensors, which give each value's sharding.

    Example:
        >>> state = entry.load(ema.state_dict())   # every process; any process count
    """

    def __init__(self, folder: Path, key: str) -> None:
        self.folder, self.key = Path(folder), key

    def load(self, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Clones of `like`'s tensors holding the saved values (resharded as needed).

        Raises:
            CheckpointError: the checkpoint lacks one of `like`'s keys.
        """
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.api import CheckpointException

        state = {self.key: {k: v.detach().clone() for k, v in like.items()}}
        try:
            dcp.load(state, checkpoint_id=str(self.folder / SHARDED), planner=_planner())
        except (CheckpointException, Exception) as err:  # DCP's is a BaseException
            first = _last_line(err)
            raise CheckpointError(
                f"{self.folder / SHARDED}: cannot read {self.key!r} into this run's state "
                f"({first}); was it saved with the same model and hooks?"
            ) from None
        return state[self.key]


def _last_line(err: BaseException) -> str:
    """The message of `err` in one line: DCP's exceptions carry each rank's traceback, whose
    last line names the cause."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def with_sharded_entries(checkpoint: dict, folder: Path) -> dict:
    """`checkpoint` (engine_state.json of `folder`) with each marker replaced by its
    `ShardedEntry`."""
    return {
        key: ShardedEntry(folder, value[_MARKER])
        if isinstance(value, dict) and set(value) == {_MARKER}
        else value
        for key, value in checkpoint.items()
    }


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
    dcp.load(state, checkpoint_id=str(Path(folder) / SHARDED), planner=_planner())
    set_model_state_dict(model, state["model"])
    for name, optimizer in optimizers.items():
        set_optimizer_state_dict(model, optimizer, state[f"optimizer.{name}"])


def _planner():
    """DCP's load planner without its guess that a checkpoint comes from torch <= 2.3.

    When the checkpoint holds keys this process does not load, DCP re-flattens the state in
    the 2.3 layout, which leaves ``param_groups`` whole and then fails on it. FSDP1 causes
    this: a process whose shard of a small tensor is empty holds no entry for it. Engine's
    checkpoints are never in the 2.3 layout.
    """
    from torch.distributed.checkpoint.default_planner import (
        DefaultLoadPlanner,
        create_default_local_load_plan,
    )

    class CurrentLayoutPlanner(DefaultLoadPlanner):
        def create_local_plan(self):
            return create_default_local_load_plan(
                self.state_dict, self.metadata, not self.allow_partial_load
            )

    return CurrentLayoutPlanner()


def consolidated_model_state(folder: Path) -> dict[str, torch.Tensor]:
    """The whole model state dict of a sharded checkpoint, read in this process alone
    (no process group, none of the processes that wrote it)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "full.pt"
        dcp_to_torch_save(str(Path(folder) / SHARDED), str(out))
        full = torch.load(out, map_location="cpu", weights_only=True)
    return {key: value.contiguous() for key, value in full["model"].items()}

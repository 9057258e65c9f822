"""Model weights in and out of checkpoints: wrapper-free names, strict loading, ``load_from``.

Checkpoints store the state dict under the names of the user's (unwrapped) model, so a
checkpoint written by a DDP run loads in a notebook and the other way round. Loading
compares names and shapes first and reports every difference in one line.

Example:
    >>> load_weights(runner, dict(path="work_dirs/pretrain/epoch_10", strict=False))
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint.deepspeed_state import refuse_whole_weights
from engine.checkpoint.io import (
    MODEL,
    CheckpointError,
    load_tensors,
    require_file,
    torch_load_weights_only,
)
from engine.checkpoint.manifest import verify
from engine.checkpoint.pth_files import load_mmengine_pth
from engine.checkpoint.sharded_state import has_shards as has_sharded_state
from engine.checkpoint.sharded_state import load_shards as load_sharded

logger = logging.getLogger("engine")


def plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s state dict under the unwrapped model's names. Children that
    ``model_wrapper='separate'`` puts in DDP keep plain keys (`engine.model.wrappers`), so this
    is the module's own state dict; it is the one place to adapt for other wrappers."""
    return model.state_dict()


def load_state_into(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path, strict: bool
) -> tuple[list[str], list[str], list[str]]:
    """Copy `state` into `model`.

    Args:
        model: the unwrapped model.
        state: tensors by plain name, as `plain_state_dict` gives them.
        source: the file they came from, for messages.
        strict: any missing, unexpected or mis-shaped key is a `CheckpointError` naming
            them; with False those keys are skipped.

    Returns:
        (missing, unexpected, shape mismatches) as lists of strings.
    """
    refuse_whole_weights(model, source)  # DeepSpeed's optimizer would keep the old weights
    own = plain_state_dict(model)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} in the checkpoint vs {tuple(own[k].shape)} in the model"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if strict and (missing or unexpected or mismatched):
        raise CheckpointError(
            f"{source} does not fit the model: {key_report(missing, unexpected, mismatched)}"
        )
    skip = {m.split(" ", 1)[0] for m in mismatched}
    fitting = {k: v for k, v in state.items() if k in own and k not in skip}
    model.load_state_dict(fitting, strict=False)
    return missing, unexpected, mismatched


def key_report(missing: list[str], unexpected: list[str], mismatched: list[str]) -> str:
    """One line: ``missing keys [a, b]; unexpected keys [c]; shape mismatch [...]``."""

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")

    parts = [
        f"{label} [{some(keys)}]"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatch", mismatched),
        )
        if keys
    ]
    return "; ".join(parts) or "all keys match"


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """(state dict, the file read) from a checkpoint folder, a ``.safetensors`` file or a
    ``.pt``/``.pth``/``.bin`` state dict (weights-only; its ``'state_dict'`` entry if any)."""
    if path.is_dir():
        path = require_file(path / MODEL, f"a checkpoint folder holding {MODEL}")
        verify(path.parent, [MODEL])  # a named checkpoint that is broken is refused
    if path.suffix == ".safetensors":
        return load_tensors(path, "model weights in safetensors format")[0], path
    if path.suffix in (".pt", ".pth", ".bin"):
        try:
            data = torch_load_weights_only(path, "a state dict of tensors")
        except CheckpointError as refused:  # MMEngine's runner checkpoints hold its objects
            data = load_mmengine_pth(path, refused)
        data = data.get("state_dict", data) if isinstance(data, dict) else data
        if not isinstance(data, dict) or not all(
            isinstance(v, torch.Tensor) for v in data.values()
        ):
            raise CheckpointError(f"{path} is not a state dict of tensors (name -> tensor)")
        return data, path
    raise CheckpointError(
        f"load_from {str(path)!r} has an unknown kind; expected a checkpoint folder, .safetensors or .pt/.pth"
    )


def load_weights(runner: Any, source: Any) -> None:
    """Load model weights only (``load_from``); counters, optimizer and RNG are untouched.

    Args:
        runner: a `Runner` (its ``_raw_model`` receives the weights).
        source: a checkpoint folder, a ``.safetensors`` file (e.g. from
            `engine.checkpoint.export.export_weights`), a ``.pt``/``.pth`` state dict, or
            ``dict(path=..., strict=False)``. ``strict`` defaults to True: missing,
            unexpected or mis-shaped keys are an error; with False they are skipped and
            reported in one log line.
    """
    strict = True
    if isinstance(source, dict):
        if "path" not in source or set(source) - {"path", "strict"}:
            raise ValueError(f"load_from dict takes 'path' and 'strict', got keys {sorted(source)}")
        strict = bool(source.get("strict", True))
        source = source["path"]
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"load_from {str(source)!r} does not exist; expected a checkpoint folder, a .safetensors or a .pt/.pth file"
        )
    if path.is_dir() and has_sharded_state(path):
        load_sharded(path, runner._raw_model, {})
        logger.info("Loaded sharded weights from %s", path)
        return
    tensors, where = read_weights(path)
    report = key_report(*load_state_into(runner._raw_model, tensors, where, strict))
    logger.info("Loaded weights from %s (strict=%s): %s", where, strict, report)

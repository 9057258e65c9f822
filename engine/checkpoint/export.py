"""Export a checkpoint's model weights alone, to one safetensors file, and load them back.

The command line ``engine export`` (`engine.cli`) calls `export_weights`. The file keeps
what the checkpoint recorded about the model (its class, constructor arguments, the data
preprocessor's settings and the run's config, see `engine.checkpoint.model_source`), so
`load_exported` can rebuild the model and ``model.predict(batch)`` preprocesses as in
training.

Example:
    >>> export_weights("work_dirs/demo/epoch_10", "demo.safetensors", dtype="bfloat16")
    PosixPath('demo.safetensors')
    >>> model = load_exported("demo.safetensors")        # eval mode, on the CPU
    >>> model.predict(batch)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from engine.checkpoint.find import checkpoint_folder, find_latest_checkpoint
from engine.checkpoint.io import MODEL, load_tensors, require_file, save_tensors
from engine.checkpoint.manifest import verify
from engine.checkpoint.model_source import CONFIG, rebuild_model
from engine.checkpoint.model_weights import load_state_into
from engine.checkpoint.sharded_state import consolidated_state as consolidated_model_state
from engine.checkpoint.sharded_state import has_shards as has_sharded_state


def export_weights(checkpoint: str | Path, out: str | Path, dtype: str | None = None) -> Path:
    """Write a checkpoint's model weights alone to one safetensors file, for inference.

    Load it with `load_exported` (which rebuilds the model), ``Runner(load_from=out)``
    or ``safetensors.torch.load_model(model, out)``.

    Args:
        checkpoint: a checkpoint folder, or a work_dir (its latest checkpoint).
        out: the ``.safetensors`` file to write (replaced atomically if it exists).
        dtype: ``'float16'``/``'bfloat16'``/``'float32'`` to cast floating tensors; None keeps them.

    Returns:
        `out` as a Path.
    """
    folder = checkpoint_folder(checkpoint, "checkpoint")
    if not (folder / MODEL).is_file() and not has_sharded_state(folder):
        latest = find_latest_checkpoint(folder)
        if latest is None:
            raise FileNotFoundError(
                f"{folder} has no {MODEL} and no checkpoint folder; expected a checkpoint or a work_dir"
            )
        folder = latest
    if has_sharded_state(folder):  # consolidated here, without the processes that wrote it
        verify(folder)
        tensors, meta = consolidated_model_state(folder), {}
    else:
        verify(folder, [MODEL])
        tensors, meta = load_tensors(folder / MODEL, "the model weights of an engine checkpoint")
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
    about = {k: v for k, v in meta.items() if k.startswith("engine.")}
    save_tensors(tmp, tensors, metadata={"format": "pt", "source": str(folder), **about})
    tmp.replace(out)
    return out


def load_exported(
    path: str | Path, model: nn.Module | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """The model of an exported (or checkpoint) weights file, ready to predict.

    Args:
        path: a file written by `export_weights`, or a checkpoint's ``model.safetensors``
            (a checkpoint folder works too).
        model: the model to load the weights into; None rebuilds it from the class and
            constructor arguments the file records (importing the module that defines it).
        device: where the model goes.

    Returns:
        The model, in eval mode, on `device`: call ``model.predict(batch)``.

    Raises:
        ValueError: the file cannot say how to rebuild the model (pass `model`).
        CheckpointError: the weights do not fit the model.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL
    tensors, meta = load_tensors(path, "weights written by engine export or a checkpoint")
    if model is None:
        model = rebuild_model(meta, path)
    load_state_into(model, tensors, path, strict=True)
    return model.to(device).eval()


def exported_config(path: str | Path) -> dict[str, Any] | None:
    """The run config recorded in an exported weights file (``Runner(cfg=...)``), or None."""
    require_file(Path(path), "weights written by engine export")
    with safe_open(str(path), framework="pt") as f:  # the header alone, not the tensors
        meta = f.metadata() or {}
    return json.loads(meta[CONFIG]) if CONFIG in meta else None

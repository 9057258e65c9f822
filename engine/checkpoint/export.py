"""Export a checkpoint's model weights alone, to one safetensors file for inference.

The command line ``python -m engine export`` (`engine.__main__`) calls `export_weights`.

Example:
    >>> export_weights("work_dirs/demo/epoch_10", "demo.safetensors", dtype="bfloat16")
    PosixPath('demo.safetensors')
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.checkpoint.find import checkpoint_folder, find_latest_checkpoint
from engine.checkpoint.io import MODEL, load_tensors, save_tensors
from engine.checkpoint.manifest import verify
from engine.checkpoint.sharded import consolidated_model_state, has_sharded_state


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
    if not (folder / MODEL).is_file() and not has_sharded_state(folder):
        latest = find_latest_checkpoint(folder)
        if latest is None:
            raise FileNotFoundError(
                f"{folder} has no {MODEL} and no checkpoint folder; expected a checkpoint or a work_dir"
            )
        folder = latest
    if has_sharded_state(folder):  # consolidated here, without the processes that wrote it
        verify(folder)
        tensors = consolidated_model_state(folder)
    else:
        verify(folder, [MODEL])
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

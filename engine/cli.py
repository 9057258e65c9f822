"""The ``engine`` command: ``engine export``, ``engine plot`` and ``engine predict``.

Installed as a console script (``python -m engine`` is the same). Each subcommand is a
dataclass whose fields are its arguments (tyro turns their docstrings into ``--help``).

Example:
    $ engine export work_dirs/digits digits.safetensors          # the latest checkpoint
    $ engine plot work_dirs/digits                               # curves.png of the newest run
    $ engine predict digits.safetensors inputs.safetensors preds.safetensors
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import tyro
from safetensors.torch import load_file, save_file

from engine.checkpoint.export import export_weights, load_exported
from engine.checkpoint.io import CheckpointError
from engine.plot import plot_curves

_POS = tyro.conf.Positional


@dataclass
class Export:
    """Write a checkpoint's model weights alone to one safetensors file, for inference."""

    checkpoint: Annotated[str, _POS, tyro.conf.arg(metavar="CHECKPOINT")]
    """A checkpoint folder (work_dir/epoch_10), or a work_dir for its latest checkpoint."""
    out: Annotated[str, _POS, tyro.conf.arg(metavar="OUT")]
    """The .safetensors file to write."""
    dtype: Literal["float16", "bfloat16", "float32"] | None = None
    """Cast floating-point weights to this type; by default they are kept as saved."""

    def run(self) -> None:
        path = export_weights(self.checkpoint, self.out, self.dtype)
        print(f"wrote {path}")


@dataclass
class Plot:
    """Draw a run's losses, lr and validation metrics against the iteration, as a PNG."""

    path: Annotated[str, _POS, tyro.conf.arg(metavar="WORK_DIR")]
    """A work_dir (its newest run folder), a run folder or a scalars.jsonl file."""
    out: str | None = None
    """The PNG to write; default: curves.png in the run folder."""

    def run(self) -> None:
        print(f"wrote {plot_curves(self.path, self.out)}")


@dataclass
class Predict:
    """Predict with exported weights: inputs and outputs are safetensors files of batched tensors.

    The inputs file holds one tensor per argument of the model's forward (e.g. 'inputs',
    N x 1 x 8 x 8 for the digits recipe); the model is rebuilt from the weights file and
    each batch goes through its data preprocessor and forward(mode='predict').
    """

    weights: Annotated[str, _POS, tyro.conf.arg(metavar="WEIGHTS")]
    """A file written by 'engine export' (or a checkpoint's model.safetensors)."""
    inputs: Annotated[str, _POS, tyro.conf.arg(metavar="INPUTS")]
    """A safetensors file of input tensors, keyed by forward's argument names, batch first."""
    out: Annotated[str, _POS, tyro.conf.arg(metavar="OUT")]
    """The safetensors file to write the predictions to."""
    batch_size: int = 256
    """Samples per forward pass."""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """Where the model runs."""

    def run(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        inputs = load_file(self.inputs)
        sizes = {len(v) for v in inputs.values()}
        if len(sizes) != 1:
            raise ValueError(
                f"{self.inputs}: the tensors' first dimensions differ ({sorted(sizes)})"
            )
        model = load_exported(self.weights, device=self.device)
        (n,) = sizes
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, n, self.batch_size):
            batch = {k: v[start : start + self.batch_size] for k, v in inputs.items()}
            for key, value in _tensors(model.predict(batch)).items():
                parts.setdefault(key, []).append(value.cpu())
        out = {
            k: torch.cat([t.reshape(1) if t.ndim == 0 else t for t in v]) for k, v in parts.items()
        }
        Path(self.out).parent.mkdir(parents=True, exist_ok=True)
        save_file(out, self.out)
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in out.items())
        print(f"wrote {self.out}: {shapes}")


def _tensors(output: Any) -> dict[str, torch.Tensor]:
    """The tensors of what forward(mode='predict') returned, by name (other values dropped)."""
    if isinstance(output, torch.Tensor):
        return {"predictions": output}
    if isinstance(output, dict):
        return {str(k): v for k, v in output.items() if isinstance(v, torch.Tensor)}
    if isinstance(output, (list, tuple)):
        return {f"output_{i}": v for i, v in enumerate(output) if isinstance(v, torch.Tensor)}
    raise TypeError(
        f"forward(mode='predict') returned a {type(output).__name__}; no tensors to save"
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``engine`` console script."""
    command = tyro.extras.subcommand_cli_from_dict(
        {"export": Export, "plot": Plot, "predict": Predict}, args=args
    )
    try:
        command.run()
    except (FileNotFoundError, CheckpointError, ValueError, ImportError, TypeError) as err:
        raise SystemExit(f"error: {err}") from None

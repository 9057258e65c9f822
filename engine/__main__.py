"""engine's command line: ``python -m engine export <checkpoint> <out.safetensors>``.

Example:
    $ python -m engine export work_dirs/demo/epoch_10 demo.safetensors --dtype bfloat16
    $ python -m engine export work_dirs/demo demo.safetensors     # its latest checkpoint
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import tyro

from engine.checkpoint.export import export_weights
from engine.checkpoint.io import CheckpointError


@dataclass
class Export:
    """Write a checkpoint's model weights alone to one safetensors file, for inference."""

    checkpoint: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A checkpoint folder (work_dir/epoch_10), or a work_dir for its latest checkpoint."""
    out: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="OUT")]
    """The .safetensors file to write."""
    dtype: Literal["float16", "bfloat16", "float32"] | None = None
    """Cast floating-point weights to this type; by default they are kept as saved."""

    def run(self) -> None:
        path = export_weights(self.checkpoint, self.out, self.dtype)
        print(f"wrote {path}")


def main(args: list[str] | None = None) -> None:
    command = tyro.extras.subcommand_cli_from_dict({"export": Export}, args=args)
    try:
        command.run()
    except (FileNotFoundError, CheckpointError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()

"""Typed run settings that recipes compose and tyro turns into CLI flags.

Each field's docstring becomes its ``--help`` text; ``__post_init__`` rejects bad values
with a one-line error before any work starts. The dataclasses translate themselves into
the MMEngine-style arguments `engine.Runner` takes (``to_mmengine``/``runner_kwargs``),
so a recipe passes them on unchanged.

Example (recipes/train.py does this with a bigger config)::

    run, optim = tyro.cli(RunConfig), OptimConfig(lr=0.01)
    runner = Runner(model, train_dataloader=..., optim_wrapper=optim.to_mmengine(),
                    param_scheduler=optim.param_scheduler(), **run.runner_kwargs())
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# MMEngine's Config/ConfigDict, for ported code (`engine.config_dict`).
from engine.config_dict import Config, ConfigDict  # noqa: F401


@dataclass
class OptimConfig:
    """The optimizer and how its updates are made (`engine.OptimWrapper`)."""

    optimizer: Literal["SGD", "AdamW", "Adam"] = "AdamW"
    """Optimizer, a torch.optim class."""
    lr: float = 1e-3
    """Learning rate."""
    momentum: float = 0.9
    """SGD momentum; beta1 for Adam/AdamW."""
    weight_decay: float = 0.0
    """Weight decay (decoupled for AdamW, L2 for SGD and Adam)."""
    accumulative_counts: int = 1
    """Micro-batches whose mean gradient makes one optimizer update."""
    clip_grad_norm: float | None = None
    """Clip the gradients' global L2 norm to this value on each update; None: no clipping."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """'cosine': decay the lr to 0 over the run, after every update."""

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.accumulative_counts < 1:
            raise ValueError(f"accumulative_counts must be >= 1, got {self.accumulative_counts}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be > 0 or None, got {self.clip_grad_norm}")

    def to_mmengine(self) -> dict[str, Any]:
        """The ``optim_wrapper`` dict `Runner` takes (MMEngine's form).

        >>> OptimConfig("SGD", lr=0.1).to_mmengine()["optimizer"]
        {'type': 'SGD', 'lr': 0.1, 'weight_decay': 0.0, 'momentum': 0.9}
        """
        optimizer: dict[str, Any] = dict(
            type=self.optimizer, lr=self.lr, weight_decay=self.weight_decay
        )
        if self.optimizer == "SGD":
            optimizer["momentum"] = self.momentum
        else:
            optimizer["betas"] = (self.momentum, 0.999)
        clip = None if self.clip_grad_norm is None else dict(max_norm=self.clip_grad_norm)
        return dict(
            optimizer=optimizer, accumulative_counts=self.accumulative_counts, clip_grad=clip
        )

    def param_scheduler(self) -> list[dict[str, Any]]:
        """The ``param_scheduler`` list `Runner` takes; its open end becomes the run's end."""
        if self.lr_schedule == "constant":
            return []
        return [dict(type="CosineAnnealingLR", by_epoch=True, convert_to_iter_based=True)]


@dataclass
class RunConfig:
    """Where a run writes, how long it trains, and how it is logged (`engine.Runner`)."""

    work_dir: str = "work_dirs/run"
    """Directory for run.log, scalars.jsonl, config.json and checkpoints."""
    max_epochs: int = 10
    """Epochs to train."""
    val_interval: int = 1
    """Validate every this many epochs (and after the last one)."""
    seed: int | None = 0
    """Seed for torch/numpy/random and the data order; None: not seeded."""
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None
    """Autocast precision; fp16 adds a loss scaler. None: as 'accelerate launch --mixed_precision' says ('no' by default)."""
    log_interval: int = 10
    """Log losses and lr every this many iterations (the only host syncs of training)."""
    resume: bool = False
    """Continue from the latest checkpoint in work_dir."""
    log_with: Literal["tensorboard", "wandb"] | None = None
    """Also send the logged scalars to this Accelerate tracker (its package must be installed)."""

    def __post_init__(self) -> None:
        for name in ("max_epochs", "val_interval", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.work_dir:
            raise ValueError("work_dir must be a non-empty path")

    def runner_kwargs(self) -> dict[str, Any]:
        """The `Runner` arguments these settings fill in, MMEngine-style.

        >>> RunConfig(max_epochs=2).runner_kwargs()["train_cfg"]
        {'by_epoch': True, 'max_epochs': 2, 'val_interval': 1}
        """
        return dict(
            work_dir=self.work_dir,
            train_cfg=dict(
                by_epoch=True, max_epochs=self.max_epochs, val_interval=self.val_interval
            ),
            randomness=dict(seed=self.seed),
            mixed_precision=self.mixed_precision,
            resume=self.resume,
            log_with=self.log_with,
            default_hooks=dict(logger=dict(type="LoggerHook", interval=self.log_interval)),
        )

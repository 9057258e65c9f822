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

from dataclasses import dataclass, field
from typing import Any, Literal

import torch.utils.data

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
    warmup_iters: int = 0
    """Raise the lr linearly from 0.1% to its value over this many optimizer updates; 0: no warm-up."""

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
        if self.warmup_iters < 0:
            raise ValueError(f"warmup_iters must be >= 0, got {self.warmup_iters}")

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
        schedules: list[dict[str, Any]] = []
        if self.warmup_iters:  # multiplies the cosine's factor, as MMEngine chains schedules
            schedules.append(
                dict(
                    type="LinearLR",
                    start_factor=1e-3,
                    by_epoch=False,
                    begin=0,
                    end=self.warmup_iters,
                )
            )
        if self.lr_schedule == "cosine":
            schedules.append(
                dict(type="CosineAnnealingLR", by_epoch=True, convert_to_iter_based=True)
            )
        return schedules


@dataclass
class CheckpointConfig:
    """When checkpoints are written to work_dir and how many are kept (`engine.CheckpointHook`)."""

    checkpoint_interval: int | None = None
    """Save a resumable checkpoint every this many epochs (iterations with --max-iters); None: every epoch, or at the end with --max-iters."""
    max_keep_ckpts: int | None = None
    """Keep only the newest this many periodic checkpoints; None: keep all."""
    save_best: bool = False
    """Also keep best_<metric>/, the weights with the best --monitor metric so far."""
    async_save: bool = False
    """Write checkpoints in a background thread; training waits only while the state is copied."""


@dataclass
class ExtrasConfig:
    """Optional hooks: an exponential moving average of the weights, early stopping."""

    ema_momentum: float | None = None
    """Validate and save an EMA of the weights updated with this momentum (e.g. 0.0002); None: off."""
    early_stopping_patience: int | None = None
    """Stop when --monitor has not improved for this many validations; None: never stop early."""


@dataclass
class RunConfig:
    """Where a run writes, how long it trains, how it starts, and how it is logged (`engine.Runner`)."""

    work_dir: str = "work_dirs/run"
    """Directory for checkpoints; each run writes run.log, scalars.jsonl, config.json and curves.png into its own work_dir/<timestamp>/."""
    max_epochs: int = 10
    """Epochs to train."""
    max_iters: int | None = None
    """Train this many iterations instead of --max-epochs (the data cycles)."""
    val_interval: int | None = None
    """Validate every this many epochs (iterations with --max-iters); None: every epoch, or only at the end with --max-iters. Always after the last one."""
    seed: int | None = 0
    """Seed for torch/numpy/random and the data order; None: not seeded."""
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None
    """Autocast precision; fp16 adds a loss scaler. None: as 'accelerate launch --mixed_precision' says ('no' by default)."""
    compile: bool = False
    """Compile the model with torch.compile (the first iterations are slow while it compiles)."""
    log_interval: int = 10
    """Log losses and lr every this many iterations (the only host syncs of training)."""
    resume: bool = False
    """Continue from the latest checkpoint in work_dir."""
    load_from: str | None = None
    """Start from these weights: a checkpoint folder, a work_dir (its latest) or an exported .safetensors."""
    eval_only: bool = False
    """Do not train: evaluate the weights of --load-from (else work_dir's latest checkpoint) on val and test."""
    smoke: int | None = None
    """A smoke run: train this many iterations and validate on this many batches, one epoch, no checkpoints (Lightning's fast_dev_run)."""
    log_with: Literal["tensorboard", "wandb"] | None = None
    """Also send the logged scalars and the whole config to this tracker (pip install 'engine-train[tensorboard]')."""
    monitor: str | None = None
    """The validation metric that --save-best and --early-stopping-patience watch, e.g. accuracy/top1."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    extras: ExtrasConfig = field(default_factory=ExtrasConfig)

    def __post_init__(self) -> None:
        for name in ("max_epochs", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_iters", "val_interval", "smoke"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)}")
        if not self.work_dir:
            raise ValueError("work_dir must be a non-empty path")
        ckpt, extras = self.checkpoint, self.extras
        if ckpt.checkpoint_interval is not None and ckpt.checkpoint_interval < 1:
            raise ValueError(f"checkpoint_interval must be >= 1, got {ckpt.checkpoint_interval}")
        if ckpt.max_keep_ckpts is not None and ckpt.max_keep_ckpts < 1:
            raise ValueError(f"max_keep_ckpts must be >= 1 or None, got {ckpt.max_keep_ckpts}")
        if extras.ema_momentum is not None and not 0 < extras.ema_momentum < 1:
            raise ValueError(f"ema_momentum must be in (0, 1) or None, got {extras.ema_momentum}")
        if extras.early_stopping_patience is not None and extras.early_stopping_patience < 1:
            raise ValueError(
                f"early_stopping_patience must be >= 1 or None, got {extras.early_stopping_patience}"
            )
        if extras.early_stopping_patience is not None and self.monitor is None:
            raise ValueError(
                "early_stopping_patience needs --monitor, e.g. --monitor accuracy/top1"
            )
        if self.resume and self.eval_only:
            raise ValueError("eval_only evaluates weights without training: drop resume")

    def limit(self, dataset: Any, batch_size: int) -> Any:
        """`dataset` cut to `smoke` batches of `batch_size` for a smoke run; else unchanged.

        >>> RunConfig(smoke=2).limit(list(range(100)), batch_size=8)  # a datasets.Dataset too
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
        """
        if self.smoke is None:
            return dataset
        n = min(len(dataset), self.smoke * batch_size)
        if hasattr(dataset, "select"):  # a datasets.Dataset
            return dataset.select(range(n))
        if isinstance(dataset, list):
            return dataset[:n]
        return torch.utils.data.Subset(dataset, range(n))

    def train_cfg(self) -> dict[str, Any]:
        """The ``train_cfg`` `Runner` takes: by epochs, by iterations, or one smoke epoch."""
        if self.smoke is not None:
            return dict(by_epoch=True, max_epochs=1, val_interval=1)
        if self.max_iters is not None:
            every = self.val_interval or self.max_iters
            return dict(by_epoch=False, max_iters=self.max_iters, val_interval=every)
        return dict(by_epoch=True, max_epochs=self.max_epochs, val_interval=self.val_interval or 1)

    def runner_kwargs(self) -> dict[str, Any]:
        """The `Runner` arguments these settings fill in, MMEngine-style.

        >>> RunConfig(max_epochs=2).runner_kwargs()["train_cfg"]
        {'by_epoch': True, 'max_epochs': 2, 'val_interval': 1}
        """
        by_epoch = self.max_iters is None or self.smoke is not None
        ckpt, extras = self.checkpoint, self.extras
        checkpoint = dict(
            type="CheckpointHook",
            interval=ckpt.checkpoint_interval or (1 if by_epoch else -1),
            by_epoch=by_epoch,
            max_keep_ckpts=-1 if ckpt.max_keep_ckpts is None else ckpt.max_keep_ckpts,
            save_best=(self.monitor or "auto") if ckpt.save_best else None,
            async_save=ckpt.async_save,
        )
        custom_hooks: list[dict[str, Any]] = []
        if extras.ema_momentum is not None:
            custom_hooks.append(dict(type="EMAHook", momentum=extras.ema_momentum))
        if extras.early_stopping_patience is not None:
            custom_hooks.append(
                dict(
                    type="EarlyStoppingHook",
                    monitor=self.monitor,
                    patience=extras.early_stopping_patience,
                )
            )
        return dict(
            work_dir=self.work_dir,
            train_cfg=self.train_cfg(),
            randomness=dict(seed=self.seed),
            mixed_precision=self.mixed_precision,
            compile=self.compile,
            resume=self.resume,
            load_from=self.load_from,
            log_with=self.log_with,
            default_hooks=dict(
                logger=dict(type="LoggerHook", interval=self.log_interval),
                # A smoke run leaves work_dir's checkpoints (and so resume) alone.
                checkpoint=None if self.smoke is not None else checkpoint,
            ),
            custom_hooks=custom_hooks,
        )

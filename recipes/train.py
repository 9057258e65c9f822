"""Train a small CNN on the 8x8 handwritten digits bundled in recipes/data.

One process:         python recipes/train.py --max-epochs 5 --lr 3e-3
Several processes:   accelerate launch --multi_gpu --num_processes 2 recipes/train.py
CPU-only machines:   ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 recipes/train.py
All flags:           python recipes/train.py --help

Copy this file to start a new recipe: the config dataclass, the build_* functions and
main() are all there is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
import tyro
from accelerate import PartialState
from accelerate.utils import set_seed
from torch import nn

from engine import Accuracy, BaseModel, ImgDataPreprocessor, Runner
from engine.checkpoint.disk_errors import write_file
from engine.config import OptimConfig, RunConfig

DATA = Path(__file__).parent / "data" / "digits.parquet"  # next to the recipe, whatever the cwd


@dataclass
class Config:
    """Digits classification: every setting of the run, each a flag.

    The defaults (a preset is plain Python) reach ~99% validation accuracy in ~10 s on 2 CPU cores.
    """

    run: RunConfig = field(
        default_factory=lambda: RunConfig(work_dir="work_dirs/digits", max_epochs=5)
    )
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            "AdamW", lr=3e-3, weight_decay=1e-4, lr_schedule="cosine"
        )
    )
    batch_size: int = 32
    """Samples per batch on each process, for training and validation (the global batch is this times the process count)."""
    val_fraction: float = 0.2
    """Share of the 1,797 digits held out for validation."""
    split_seed: int = 0
    """Seed of the train/val split; keep it fixed to compare runs."""
    width: int = 32
    """Channels of the first conv layer; the next two have twice as many."""
    cpu_threads: int | None = 1
    """Threads per process for torch's CPU ops; None: torch's default (one per core)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1 or None, got {self.cpu_threads}")


def build_datasets(cfg: Config) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The digits as {'inputs': 1x8x8 int tensor (values 0..16), 'labels': int}, split train/val."""
    ds = datasets.load_dataset("parquet", data_files=str(DATA), split="train")
    # Shape the flat 64 pixels as one-channel images once, here; datasets caches the result.
    ds = ds.map(
        lambda batch: {"inputs": [torch.tensor(img).view(1, 8, 8) for img in batch["image"]]},
        batched=True,
        remove_columns=["image"],
    ).rename_column("label", "labels")
    # A seeded split gives every process (and every run) the same train/val samples.
    split = ds.train_test_split(test_size=cfg.val_fraction, seed=cfg.split_seed)
    return split["train"].with_format("torch"), split["test"].with_format("torch")


class DigitsCNN(BaseModel):
    """Three 3x3 conv-BN-ReLU layers, global average pooling and a linear classifier."""

    def __init__(self, width: int = 32) -> None:
        # Normalisation runs on the device, inside the step, for train and val alike;
        # the dataset keeps the raw 0..16 ints. Mean/std: the pixels' over all digits.
        super().__init__(data_preprocessor=ImgDataPreprocessor(mean=[4.88], std=[6.02]))
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),  # BatchNorm makes the first epoch reach ~95% already
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, 10)

    # The batch is a dict, so its keys arrive as keyword arguments. ImgDataPreprocessor
    # adds MMEngine's `data_samples` key (None here), hence the extra parameter.
    def forward(self, inputs, labels=None, mode="tensor", data_samples=None):
        logits = self.head(self.features(inputs))
        if mode == "loss":  # train_step sums every key containing 'loss'
            return dict(loss_cls=F.cross_entropy(logits, labels))
        if mode == "predict":  # what Accuracy.process receives: (scores, labels)
            return logits, labels
        return logits  # mode == 'tensor': raw outputs, e.g. for export


def build_runner(cfg: Config) -> Runner:
    train_set, val_set = build_datasets(cfg)
    if cfg.run.seed is not None:
        set_seed(cfg.run.seed)  # the model's initial weights are drawn before the Runner seeds
    return Runner(
        model=DigitsCNN(cfg.width),
        # Dicts of DataLoader arguments: the Runner builds the loaders and lets Accelerate
        # shard them across processes, with a seeded (and so resumable) shuffle.
        train_dataloader=dict(dataset=train_set, batch_size=cfg.batch_size, shuffle=True),
        val_dataloader=dict(dataset=val_set, batch_size=cfg.batch_size),
        val_evaluator=Accuracy(topk=(1,)),
        optim_wrapper=cfg.optim.to_mmengine(),
        param_scheduler=cfg.optim.param_scheduler(),
        **cfg.run.runner_kwargs(),  # work_dir, train_cfg, seed, precision, logging, resume
    )


def main(cfg: Config) -> dict:
    """Train, validate, and return the last validation metrics."""
    if cfg.cpu_threads is not None:
        # On 8x8 images an op is too small to split: more threads only add synchronisation,
        # which turns into busy-waiting when the cores are shared. (torchrun sets 1 too.)
        torch.set_num_threads(cfg.cpu_threads)
    runner = build_runner(cfg)
    if runner.accelerator.is_main_process:  # one writer, even under accelerate launch
        path = Path(cfg.run.work_dir) / "config.json"
        write_file(path, json.dumps(dataclasses.asdict(cfg), indent=2) + "\n", "writing the config")
    metrics = runner.train()
    if runner.accelerator.is_main_process:
        print(f"final validation accuracy: {metrics['accuracy/top1']:.2f}%")
    return metrics


if __name__ == "__main__":
    # Flags are flat (--lr, not --optim.lr). Under accelerate launch every process parses
    # them; only the first prints --help or an error. (tyro prints __post_init__ errors
    # even with console_outputs=False, hence the redirect of the other processes' stderr.)
    first = int(os.environ.get("RANK", 0)) == 0
    with contextlib.redirect_stderr(sys.stderr if first else io.StringIO()):
        cfg = tyro.cli(Config, config=(tyro.conf.OmitArgPrefixes,), console_outputs=first)
    main(cfg)
    # Meet, then close the process group: gloo can otherwise abort a process at exit.
    PartialState().wait_for_everyone()
    PartialState().destroy_process_group()

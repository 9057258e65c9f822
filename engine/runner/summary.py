"""The start-up summary of a run: what it runs on, with what, for how long, and where it writes.

`Runner.train()` logs it once, on the main process, after any checkpoint is loaded (so it
can say where the run resumes), e.g.::

    engine 0.1.0, torch 2.13.0, accelerate 1.15.0, Python 3.11.9
    device: cpu x 1 process (not distributed), precision: no, CPU threads per process: 2
    model: DigitsCNN, 56,330 parameters (56,330 trainable)
    data: train 1,437 samples (45 batches per epoch per process), val 360 samples
    run: 5 epochs = 225 iterations = 225 optimizer updates
    run folder: work_dirs/digits/20261128_201502 (checkpoints in work_dirs/digits)
    start: from scratch

Example:
    >>> for line in summary_lines(runner): print(line)
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import torch

from engine.checkpoint.data_position import loader_length
from engine.optim.optim_wrapper_dict import members
from engine.runner.train_state import updates_done


def summary_lines(runner: Any, resumed_from: Any = None) -> list[str]:
    """The summary of `runner`'s run, one string per line.

    Args:
        runner: a built `Runner`, its checkpoint (if any) loaded.
        resumed_from: the checkpoint folder the run resumed from, or None.
    """
    acc = runner.accelerator
    lines = [
        f"engine {_version('engine-train', 'engine')}, torch {torch.__version__}, "
        f"accelerate {_version('accelerate')}, Python {platform.python_version()}"
    ]
    device = acc.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    kind = acc.distributed_type.value
    kind = "not distributed" if kind == "NO" else kind
    procs = f"{acc.num_processes} process{'es' if acc.num_processes > 1 else ''}"
    lines.append(
        f"device: {device.type}{f' ({name})' if name else ''} x {procs} ({kind}), "
        f"precision: {acc.mixed_precision}, CPU threads per process: {torch.get_num_threads()}"
    )
    model = runner._raw_model
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines.append(f"model: {type(model).__name__}, {total:,} parameters ({trainable:,} trainable)")
    lines.append("data: " + ", ".join(_data_parts(runner)))
    if getattr(runner, "train_cfg", None) is not None:
        lines.append(f"run: {_length(runner)}")
    if runner.log_dir is not None:
        lines.append(f"run folder: {runner.log_dir} (checkpoints in {runner.work_dir})")
    state = runner.state
    if resumed_from is not None:
        lines.append(f"start: resumed from {resumed_from}, at iteration {state.iter}")
    elif getattr(runner, "load_from", None) is not None:
        lines.append(f"start: weights from {runner.load_from}, counters at zero")
    else:
        lines.append("start: from scratch" if state.iter == 0 else f"start: iteration {state.iter}")
    return lines


def _data_parts(runner: Any) -> list[str]:
    parts = []
    for split in ("train", "val", "test"):
        loader = getattr(runner, f"{split}_dataloader", None)
        if loader is None:
            continue
        size, batches = loader_length(getattr(loader, "dataset", None)), loader_length(loader)
        text = f"{split} {size:,} samples" if size is not None else f"{split} (size unknown)"
        if split == "train" and batches is not None:
            text += f" ({batches:,} batches per epoch per process)"
        parts.append(text)
    return parts or ["no dataloaders"]


def _length(runner: Any) -> str:
    state, loader = runner.state, getattr(runner, "train_dataloader", None)
    iters = state.total_iters(loader_length(loader))
    epochs = state.max_epochs
    head = f"{epochs} epoch{'s' if epochs != 1 else ''}" if epochs is not None else ""
    if iters is None:
        return head or "length unknown"
    acc = members(runner.optim_wrapper)[0].accumulative_counts if runner.optim_wrapper else 1
    updates = updates_done(iters, acc, iters)
    text = f"{iters:,} iterations = {updates:,} optimizer updates"
    return f"{head} = {text}" if head else text


def _version(*packages: str) -> str:
    """The installed version of the first of `packages` found (old installs: 'engine')."""
    for package in packages:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return "(not installed)"

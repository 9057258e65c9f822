"""`run_loop`: the notebook entry point, training a model with a `Runner` built for it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from engine.hooks.logger_hook import LoggerHook
from engine.hooks.progress_bars import in_notebook
from engine.runner.runner import Runner
from engine.runner.train_state import TrainState


def run_loop(
    model: nn.Module,
    train_dataloader: Any,
    optim_wrapper: Any,
    *,
    max_epochs: int | None = None,
    max_iters: int | None = None,
    val_dataloader: Any = None,
    evaluator: Any = None,
    val_interval: int = 1,
    val_begin: int = 1,
    hooks: Iterable = (),
    state: TrainState | None = None,
    accelerator: Any = None,
    nan_policy: str = "stop",
    progress_bar: bool | None = None,
) -> TrainState:
    """Train `model` in a plain Python process (a notebook) or under ``accelerate launch``.

    Args:
        model: an `engine.BaseModel`.
        train_dataloader: a ``DataLoader`` (or an iterable with ``len``).
        optim_wrapper: an `OptimWrapper`, a torch optimizer, or a config dict such as
            ``dict(optimizer=dict(type='SGD', lr=0.01), accumulative_counts=2)``.
        max_epochs / max_iters: exactly one of them.
        val_dataloader, evaluator: validate every `val_interval` from `val_begin`.
        hooks: extra `Hook`s. Without a `LoggerHook` among them, one with progress bars is
            added when `progress_bar` says so.
        state: a `TrainState` to continue from; returned, advanced, at the end.
        accelerator: an ``Accelerator``; one is created when omitted.
        nan_policy: ``'stop'``, ``'skip'`` or ``'ignore'`` a non-finite loss (`engine.nan_guard`).
        progress_bar: add a `LoggerHook` with progress bars (training and evaluation) unless
            `hooks` has one; None: in a notebook only.

    Returns:
        The final `TrainState`.

    Example:
        >>> state = run_loop(model, loader, torch.optim.SGD(model.parameters(), lr=0.01), max_epochs=2)
        >>> state.epoch
        2
    """
    if (max_epochs is None) == (max_iters is None):
        raise ValueError(
            f"run_loop needs exactly one of max_epochs or max_iters, got max_epochs={max_epochs}, max_iters={max_iters}"
        )
    train_cfg = (
        dict(by_epoch=True, max_epochs=max_epochs, val_interval=val_interval, val_begin=val_begin)
        if max_epochs is not None
        else dict(
            by_epoch=False, max_iters=max_iters, val_interval=val_interval, val_begin=val_begin
        )
    )
    hooks = list(hooks)
    show = in_notebook() if progress_bar is None else progress_bar
    if show and not any(isinstance(h, LoggerHook) for h in hooks):
        hooks.append(LoggerHook(progress_bar=True))
    runner = Runner(
        model=model,
        work_dir=None,
        train_dataloader=train_dataloader,
        val_dataloader=val_dataloader,
        train_cfg=train_cfg,
        optim_wrapper=optim_wrapper,
        val_evaluator=evaluator,
        default_hooks=dict(logger=None, checkpoint=None),
        custom_hooks=hooks,
        accelerator=accelerator,
        nan_policy=nan_policy,
    )
    if state is not None:
        runner.state = state
    runner.train()
    return runner.state

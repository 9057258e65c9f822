"""Pure loop functions: every hook call of a run happens visibly here.

Each function takes the run's objects (``runner``: what hooks see as ``runner``, see
`engine.runner.runner.Runner`) and a `TrainState`, and returns the state. Nothing here reads a
tensor back to the host: losses stay on the device for the hooks.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from engine.checkpoint import rng
from engine.evaluator.val_loss import StepLosses
from engine.optim.optim_wrapper_dict import members, named_members
from engine.runner.infinite_iterator import _InfiniteDataloaderIterator  # noqa: F401 (MMEngine's name)
from engine.runner.prefetch import prefetch_to_device
from engine.runner.train_state import TrainState, updates_done
from engine.runner.val_schedule import should_validate

logger = logging.getLogger("engine")


def step_owner(model: nn.Module, accelerator: Any = None) -> Any:
    """The object whose ``train_step``/``val_step`` the loops call: a custom wrapper that
    defines them, else the model under Accelerate's wrapper (DDP/FSDP/compile)."""
    if hasattr(model, "train_step"):
        return model
    if accelerator is not None:
        inner = accelerator.unwrap_model(model)
        if hasattr(inner, "train_step"):
            return inner
    inner = getattr(model, "module", model)
    if hasattr(inner, "train_step"):
        return inner
    raise TypeError(
        f"{type(model).__name__} has no train_step: derive the model from engine.BaseModel "
        "or pass a model_wrapper whose result defines train_step/val_step"
    )


def _set_epoch(dataloader: Any, epoch: int) -> None:
    """Seed the sampler's shuffle with the epoch, so the order is a function of (seed, epoch)."""
    if hasattr(dataloader, "set_epoch"):
        dataloader.set_epoch(epoch)
    else:
        sampler = getattr(dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)


def _batches_from(dataloader: Any, state: TrainState, device: Any = None) -> Iterable:
    """Iterate one pass of `dataloader` from batch ``state.inner_iter``; with a CUDA
    `device`, each batch is copied there one step ahead (`prefetch_to_device`).

    Skipped batches are not loaded, except with DataLoader workers: their random streams
    (augmentation) depend on the batches each worker loaded before, so a resumed pass
    replays the skipped batches through fresh workers seeded as the interrupted pass was
    (``state.loader_seed``), and drops them.
    """
    epoch, skip = state.epoch, state.inner_iter
    _set_epoch(dataloader, epoch)
    if skip >= _length(dataloader) and skip > 0:
        # Resumed at the pass's end: no iterator, since creating one draws a seed from the
        # global RNG that the uninterrupted run did not draw here (exact resume).
        return ()
    workers = isinstance(dataloader, torch.utils.data.DataLoader) and dataloader.num_workers > 0
    if workers and not dataloader.persistent_workers:
        _seed_workers(dataloader, state, resumed=skip > 0)
    elif workers and skip:
        logger.warning(
            "Resuming inside a pass with persistent_workers=True: the workers' random "
            "streams (augmentation) differ from the interrupted run's; "
            "persistent_workers=False resumes exactly"
        )
    if skip == 0:
        return prefetch_to_device(dataloader, device)
    if workers or not isinstance(dataloader, torch.utils.data.DataLoader):
        # A plain iterable (a list in a notebook) has no sampler to skip with: step over.
        return prefetch_to_device(itertools.islice(dataloader, skip, None), device)
    from accelerate import skip_first_batches

    return prefetch_to_device(skip_first_batches(dataloader, skip), device)


def _seed_workers(dataloader: Any, state: TrainState, resumed: bool) -> None:
    """Give the pass's workers a base seed kept in ``state.loader_seed``.

    The seed is drawn from the global generator at the pass's start, as DataLoader itself
    would (the run's random streams are unchanged), and handed over through the loader's
    ``generator``; a pass resumed from a checkpoint reuses the saved one.
    """
    if not resumed or state.loader_seed is None:
        state.loader_seed = int(torch.empty((), dtype=torch.int64).random_().item())
    # Accelerate's DataLoaderShard draws the seed through the DataLoader it wraps.
    inner = getattr(dataloader, "base_dataloader", dataloader)
    inner.generator = torch.Generator().manual_seed(state.loader_seed)


def _length(dataloader: Any) -> float:
    try:
        return len(dataloader)
    except TypeError:  # an iterable of unknown length
        return float("inf")


def _counts(runner: Any, state: TrainState) -> int:
    """Total iterations of the run, for the accumulation's last partial window."""
    return state.total_iters(None if state.max_iters else len(runner.train_dataloader))


def _sync_counts(runner: Any, state: TrainState, max_counts: int) -> int:
    """Place each optim wrapper's window from the state (its own count, else the
    iteration count); returns the first one's micro-batches per window."""
    for name, wrapper in named_members(runner.optim_wrapper).items():
        init = state.windows.get(name, state.iter)
        wrapper.initialize_count_status(runner.model, init, max_counts)
    return members(runner.optim_wrapper)[0].accumulative_counts


def _train_iter(
    runner: Any,
    state: TrainState,
    steps: Any,
    batch_idx: int,
    data_batch: Any,
    acc: int,
    max_counts: int,
) -> None:
    hooks = runner.hooks
    hooks.call("before_train_iter", runner, batch_idx=batch_idx, data_batch=data_batch)
    outputs = steps.train_step(data_batch, runner.optim_wrapper)
    state.iter += 1
    state.inner_iter += 1
    state.step = updates_done(state.iter, acc, max_counts)
    wrappers = named_members(runner.optim_wrapper)
    if state.iter == max_counts:  # the run's end: members left inside a window update now
        for wrapper in wrappers.values():
            wrapper.apply_partial_window()
    state.windows = {name: w.inner_count for name, w in wrappers.items()}
    # MMEngine advances runner.iter after this event: hooks read the finished iteration's
    # index there (`RunnerAttributes.iter`), while the state already counts it as done.
    runner.in_after_train_iter = True
    try:
        hooks.call(
            "after_train_iter", runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs
        )
    finally:
        runner.in_after_train_iter = False


def start_counts(runner: Any, state: TrainState) -> tuple[Any, int, int]:
    """``(step owner, micro-batches per window, the run's iterations)`` for `train_one_iter`:
    what the loops below set up once before their first iteration."""
    max_counts = _counts(runner, state)
    acc = _sync_counts(runner, state, max_counts)
    return step_owner(runner.model, runner.accelerator), acc, max_counts


def train_one_iter(
    runner: Any, state: TrainState, batch_idx: int, data_batch: Any, prepared: tuple
) -> None:
    """One training iteration with its hooks, for a ported loop's own ``run()``
    (MMEngine's ``run_iter``); `prepared` comes from `start_counts`."""
    steps, acc, max_counts = prepared
    _train_iter(runner, state, steps, batch_idx, data_batch, acc, max_counts)


def _should_validate(runner: Any, count: int, last: bool) -> bool:
    if runner.val_dataloader is None or runner.val_evaluator is None:
        return False
    return should_validate(runner.train_cfg, count, last)


def train_epochs(runner: Any, state: TrainState) -> TrainState:
    """Epoch-based training to ``state.max_epochs``, validating every ``val_interval``
    epochs from ``val_begin`` and at the end. Resumes from ``state`` (mid-epoch too)."""
    hooks, model, dataloader = runner.hooks, runner.model, runner.train_dataloader
    device = getattr(runner, "prefetch_device", None)
    steps = step_owner(model, runner.accelerator)
    max_counts = _counts(runner, state)
    acc = _sync_counts(runner, state, max_counts)
    if state.end_of_epoch:
        # Resumed from a checkpoint saved at an epoch's end: that epoch, its hooks and its
        # validation are done; continue with the next one, as the uninterrupted run did.
        state.epoch, state.inner_iter, state.end_of_epoch = state.epoch + 1, 0, False
    hooks.call("before_train", runner)
    while state.epoch < state.max_epochs and not state.should_stop:
        hooks.call("before_train_epoch", runner)
        model.train()
        batches = _batches_from(dataloader, state, device)
        for data_batch in batches:
            _train_iter(runner, state, steps, state.inner_iter, data_batch, acc, max_counts)
            if state.should_stop:
                break
        if state.should_stop and state.inner_iter < len(dataloader):
            break  # stopped mid-epoch (a signal): resume continues this epoch
        state.end_of_epoch = True
        hooks.call("after_train_epoch", runner)
        state.epoch += 1
        state.inner_iter = 0
        state.end_of_epoch = False
        if _should_validate(runner, state.epoch, state.epoch == state.max_epochs):
            evaluate(runner, runner.val_dataloader, runner.val_evaluator, "val")
    hooks.call("after_train", runner)
    return state


def _cycle(dataloader: Any, state: TrainState, device: Any = None) -> Iterator:
    """Endless batches; each new pass bumps ``state.epoch`` and reseeds the sampler.
    (Prefetching stays inside a pass, so the epoch is bumped when the pass really ends.)"""
    while True:
        yield from _batches_from(dataloader, state, device)
        state.epoch += 1
        state.inner_iter = 0


def train_iters(runner: Any, state: TrainState) -> TrainState:
    """Iteration-based training to ``state.max_iters``, cycling the data (``set_epoch``
    on each pass), validating every ``val_interval`` iterations and at the end."""
    hooks, model = runner.hooks, runner.model
    steps = step_owner(model, runner.accelerator)
    max_counts = _counts(runner, state)
    acc = _sync_counts(runner, state, max_counts)
    hooks.call("before_train", runner)
    hooks.call("before_train_epoch", runner)
    model.train()
    batches = _cycle(runner.train_dataloader, state, getattr(runner, "prefetch_device", None))
    while state.iter < state.max_iters and not state.should_stop:
        data_batch = next(batches)
        # batch_idx is the run's iteration here, as MMEngine's IterBasedTrainLoop passes it
        _train_iter(runner, state, steps, state.iter, data_batch, acc, max_counts)
        if _should_validate(runner, state.iter, state.iter == state.max_iters):
            evaluate(runner, runner.val_dataloader, runner.val_evaluator, "val")
            model.train()
    hooks.call("after_train_epoch", runner)
    hooks.call("after_train", runner)
    return state


def evaluate(runner: Any, dataloader: Any, evaluator: Any, mode: str = "val") -> dict:
    """Run `val_step`/`test_step` over `dataloader` under ``no_grad`` in eval mode, feed
    `evaluator`, and return its metrics. The model's train/eval mode is restored."""
    if mode not in ("val", "test"):
        raise ValueError(f"evaluate mode must be 'val' or 'test', got {mode!r}")
    hooks = runner.hooks
    hooks.call(f"before_{mode}", runner)  # may replace runner.model (PrepareTTAHook)
    model, accelerator = runner.model, runner.accelerator
    steps = step_owner(model, accelerator)
    step_fn = steps.val_step if mode == "val" else steps.test_step
    was_training = model.training
    hooks.call(f"before_{mode}_epoch", runner)
    model.eval()
    autocast = accelerator.autocast if accelerator is not None else _no_autocast
    # Random numbers drawn while evaluating (the loader's seed, random augmentation) are
    # not taken from training's stream: training is the same with or without validation,
    # and a run resumed at a validation point stays exact.
    losses = StepLosses()  # the loss, when val_step returns one (MMEngine's convention)
    with rng.preserved(), torch.no_grad(), autocast():
        for batch_idx, data_batch in enumerate(dataloader):
            hooks.call(f"before_{mode}_iter", runner, batch_idx=batch_idx, data_batch=data_batch)
            outputs = losses.take(step_fn(data_batch))
            evaluator.process(data_samples=outputs, data_batch=data_batch)
            hooks.call(
                f"after_{mode}_iter",
                runner,
                batch_idx=batch_idx,
                data_batch=data_batch,
                outputs=outputs,
            )
    metrics = evaluator.evaluate(_dataset_size(dataloader))
    metrics.update(losses.summary(mode))
    runner.last_metrics = metrics  # what Runner.train()/val()/test() return
    hooks.call(f"after_{mode}_epoch", runner, metrics=metrics)
    hooks.call(f"after_{mode}", runner)
    model.train(was_training)
    return metrics


def _dataset_size(dataloader: Any) -> int | None:
    try:
        return len(dataloader.dataset)
    except (AttributeError, TypeError):
        return None


class _no_autocast:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None

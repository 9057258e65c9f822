"""`TrainState`: every loop counter of a run, in one JSON-serialisable value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainState:
    """Where a run stands. The loop functions take it and return it; nothing else keeps
    a second copy of a counter (the OptimWrapper's accumulation position is set from it).

    Attributes:
        epoch: completed epochs (epoch-based), or completed passes over the data
            (iteration-based). During an epoch it is that epoch's 0-based index.
        iter: completed training iterations (micro-batches), over the whole run.
        step: completed optimizer updates (what iteration schedules count).
        inner_iter: batches consumed in the current epoch/pass; resume skips this many.
        max_epochs / max_iters: the run's limits (one of them is set when training).
        best_scores: best value per metric name seen so far, for best-checkpoint logic.
        windows: micro-batches each optim wrapper (by member name; ``'optim_wrapper'``
            for a single one) has back-propagated: its accumulation position. A member
            that does not step every iteration (a GAN's generator) keeps its own.
        should_stop: set by a hook (early stopping, a signal) to end training at the
            next safe point.
        loader_seed: the base seed of the current pass's DataLoader workers, so that a
            run resumed inside the pass seeds its workers alike (None without workers).
        end_of_epoch: True while the ``after_train_epoch`` hooks run: a checkpoint saved
            then holds a finished epoch, and a run resumed from it starts the next one.

    Example:
        >>> state = TrainState(max_epochs=3)
        >>> TrainState.from_dict(state.state_dict()) == state
        True
    """

    epoch: int = 0
    iter: int = 0
    step: int = 0
    inner_iter: int = 0
    max_epochs: int | None = None
    max_iters: int | None = None
    best_scores: dict[str, float] = field(default_factory=dict)
    should_stop: bool = False
    end_of_epoch: bool = False
    loader_seed: int | None = None
    windows: dict[str, int] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> TrainState:
        """Update in place from `state_dict()` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(state) - names
        if unknown:
            raise ValueError(f"TrainState has no fields {sorted(unknown)}; fields: {sorted(names)}")
        for name, value in state.items():
            setattr(self, name, dict(value) if name in ("best_scores", "windows") else value)
        return self

    def total_iters(self, epoch_length: int | None) -> int | None:
        """Iterations of the whole run: ``max_iters``, or ``max_epochs`` times the batches
        per epoch; None when that length is unknown.

        >>> TrainState(max_epochs=3).total_iters(25)
        75
        """
        if self.max_iters is not None:
            return self.max_iters
        if self.max_epochs is None or epoch_length is None:
            return None
        return self.max_epochs * epoch_length

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TrainState:
        return cls().load_state_dict(state)


def updates_done(iters: int, accumulative_counts: int, max_counts: int) -> int:
    """Optimizer updates after `iters` micro-batches, windows of `accumulative_counts`,
    the last (partial) window ending at `max_counts`."""
    full = iters // accumulative_counts
    return full + (1 if iters == max_counts and iters % accumulative_counts else 0)

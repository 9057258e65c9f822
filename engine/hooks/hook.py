"""`Hook` with MMEngine's events, the dispatcher the loops call, and small stock hooks.

The loops call every event by name at a visible point (see `engine.runner.loops`); `HookList`
only sends each event to the hooks that implement it, in priority order (lower runs
first, as in MMEngine; equal priorities keep their registration order).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger("engine")

PRIORITIES = {
    "HIGHEST": 0,
    "VERY_HIGH": 10,
    "HIGH": 30,
    "ABOVE_NORMAL": 40,
    "NORMAL": 50,
    "BELOW_NORMAL": 60,
    "LOW": 70,
    "VERY_LOW": 90,
    "LOWEST": 100,
}

EVENTS = (
    "before_run",
    "after_run",
    "before_train",
    "after_train",
    "before_train_epoch",
    "after_train_epoch",
    "before_train_iter",
    "after_train_iter",
    "before_val",
    "after_val",
    "before_val_epoch",
    "after_val_epoch",
    "before_val_iter",
    "after_val_iter",
    "before_test",
    "after_test",
    "before_test_epoch",
    "after_test_epoch",
    "before_test_iter",
    "after_test_iter",
    "before_save_checkpoint",
    "after_load_checkpoint",
)


def priority_value(priority: int | str) -> int:
    """``'NORMAL'`` -> 50; an int in [0, 100] is returned as is (an enum gives its value)."""
    if isinstance(getattr(priority, "value", None), int):
        priority = priority.value
    if isinstance(priority, str):
        if priority.upper() not in PRIORITIES:
            raise ValueError(
                f"hook priority {priority!r} is unknown; accepted: an int 0-100 or {list(PRIORITIES)}"
            )
        return PRIORITIES[priority.upper()]
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError(
            "hook priority must be an integer or Priority enum value (or a name such as "
            f"'NORMAL'), got {priority!r}"
        )
    if not 0 <= priority <= 100:
        raise ValueError(f"hook priority must be between 0 and 100, got {priority}")
    return priority


class Hook:
    """Base class of hooks; override the events you need. Signatures follow MMEngine, so
    an MMEngine custom hook ports with its imports changed.

    ``runner`` offers MMEngine's attributes (``model``, ``optim_wrapper``, ``epoch``,
    ``iter``, ``max_epochs``, ``max_iters``, ``work_dir``, ``train_loop``, ``message_hub``,
    ``logger``...) and engine's ``accelerator`` and ``state`` (the `TrainState`).
    ``runner.iter`` and ``runner.epoch`` are MMEngine's at every event: inside
    ``after_train_iter`` ``runner.iter`` is the index of the iteration that just ran (MMEngine
    counts it after the hook), and the interval helpers below read them as MMEngine's do.
    ``runner.state.iter`` instead counts completed iterations (what a checkpoint records).
    As in MMEngine, the ``*_epoch``/``*_iter`` events of every mode call ``_before_epoch``,
    ``_after_epoch``, ``_before_iter``, ``_after_iter`` with ``mode``, so a hook may
    override those once for train, val and test.
    A hook whose state must survive resume implements ``state_dict``/``load_state_dict``.

    Example:
        >>> class PrintLr(Hook):
        ...     def before_train_epoch(self, runner):
        ...         print(runner.optim_wrapper.get_lr())
    """

    priority: int | str = "NORMAL"

    def before_run(self, runner) -> None: ...
    def after_run(self, runner) -> None: ...
    def before_train(self, runner) -> None: ...
    def after_train(self, runner) -> None: ...
    def before_val(self, runner) -> None: ...
    def after_val(self, runner) -> None: ...
    def before_test(self, runner) -> None: ...
    def after_test(self, runner) -> None: ...
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None: ...
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None: ...

    def before_train_epoch(self, runner) -> None:
        self._before_epoch(runner, mode="train")

    def before_val_epoch(self, runner) -> None:
        self._before_epoch(runner, mode="val")

    def before_test_epoch(self, runner) -> None:
        self._before_epoch(runner, mode="test")

    def after_train_epoch(self, runner) -> None:
        self._after_epoch(runner, mode="train")

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        self._after_epoch(runner, mode="val")

    def after_test_epoch(self, runner, metrics: dict | None = None) -> None:
        self._after_epoch(runner, mode="test")

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="train")

    def before_val_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="val")

    def before_test_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="test")

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._after_iter(runner, batch_idx, data_batch, outputs, mode="train")

    def after_val_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._after_iter(runner, batch_idx, data_batch, outputs, mode="val")

    def after_test_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._after_iter(runner, batch_idx, data_batch, outputs, mode="test")

    def _before_epoch(self, runner, mode: str = "train") -> None: ...
    def _after_epoch(self, runner, mode: str = "train") -> None: ...
    def _before_iter(
        self, runner, batch_idx: int, data_batch: Any = None, mode: str = "train"
    ) -> None: ...
    def _after_iter(
        self,
        runner,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Any = None,
        mode: str = "train",
    ) -> None: ...

    # MMEngine's helpers for interval logic, on MMEngine's runner.iter/runner.epoch.
    def every_n_epochs(self, runner, n: int, start: int = 0) -> bool:
        done = runner.epoch + 1 - start
        return done % n == 0 if done >= 0 and n > 0 else False

    def every_n_inner_iters(self, batch_idx: int, n: int) -> bool:
        return (batch_idx + 1) % n == 0 if n > 0 else False

    def every_n_train_iters(self, runner, n: int, start: int = 0) -> bool:
        done = runner.iter + 1 - start
        return done % n == 0 if done >= 0 and n > 0 else False

    def end_of_epoch(self, dataloader, batch_idx: int) -> bool:
        return batch_idx + 1 == len(dataloader)

    def is_last_train_epoch(self, runner) -> bool:
        return runner.epoch + 1 == runner.max_epochs

    def is_last_train_iter(self, runner) -> bool:
        return runner.iter + 1 == runner.max_iters

    def get_triggered_stages(self) -> list[str]:
        """The events this hook acts on (an overridden event or its generic method)."""
        return [event for event in EVENTS if _overrides(self, event)]


# The generic method each MMEngine event also reaches through the base class.
_GENERIC = {
    event: f"_{event.split('_')[0]}_{event.rsplit('_', 1)[1]}"
    for event in EVENTS
    if event.endswith(("_epoch", "_iter"))
}


def _overrides(hook: Hook, event: str) -> bool:
    cls = type(hook)
    if getattr(cls, event) is not getattr(Hook, event):
        return True
    generic = _GENERIC.get(event)
    return generic is not None and getattr(cls, generic) is not getattr(Hook, generic)


_warned: set[type] = set()
_PREFIXES = ("before_", "after_")


def warn_misnamed_events(cls: type) -> None:
    """Warn once per class about a method that looks like an event but is none (e.g.
    ``after_train_iteration``): the loops would never call it."""
    if cls in _warned:
        return
    _warned.add(cls)
    for name in sorted(vars(cls)):
        if name.startswith(_PREFIXES) and name not in EVENTS and callable(getattr(cls, name)):
            close = difflib.get_close_matches(name, EVENTS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; events: {', '.join(EVENTS)}"
            logger.warning(
                "%s.%s is not a hook event and is never called%s", cls.__name__, name, hint
            )


class HookList:
    """Hooks in priority order, with each event's handlers looked up once."""

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self.hooks: list[Hook] = []
        self._handlers: dict[str, list[Callable]] = {event: [] for event in EVENTS}
        for hook in hooks:
            self.add(hook)

    def add(self, hook: Hook, priority: int | str | None = None) -> None:
        if not isinstance(hook, Hook):
            raise TypeError(f"hooks must be engine.Hook instances, got {type(hook).__name__}")
        warn_misnamed_events(type(hook))
        if priority is not None:
            hook.priority = priority
        value = priority_value(hook.priority)
        position = sum(1 for h in self.hooks if priority_value(h.priority) <= value)
        self.hooks.insert(position, hook)
        # Only hooks that override an event receive it: no per-iteration calls to no-ops.
        self._handlers = {
            event: [getattr(h, event) for h in self.hooks if _overrides(h, event)]
            for event in EVENTS
        }

    def handlers(self, event: str) -> list[Callable]:
        return self._handlers[event]

    def call(self, event: str, runner: Any, *args: Any, **kwargs: Any) -> None:
        for handler in self._handlers[event]:
            handler(runner, *args, **kwargs)

    def __iter__(self):
        return iter(self.hooks)

    def __len__(self) -> int:
        return len(self.hooks)

    def get(self, cls: type) -> Hook | None:
        """The first hook of type `cls`, or None."""
        return next((h for h in self.hooks if isinstance(h, cls)), None)

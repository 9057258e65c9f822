"""Loops that ported code registers (``train_cfg=dict(type='MyLoop', ...)``), and MMEngine's
``runner.build_train_loop``/``build_val_loop``/``build_test_loop``.

MMEngine builds ``train_cfg`` with ``LOOPS``: a class ported code registered (or passes) is
called as ``cls(runner=, dataloader=, **train_cfg)`` and ``Runner.train()`` runs its
``run()``. The Runner still needs the run's length and validation schedule (for the state,
schedules and checkpoints), so this module splits such a cfg into engine's parsed train_cfg
and the loop's own arguments. engine's two loop names keep engine's loops.
"""

from __future__ import annotations

from typing import Any

from engine.registry import LOOPS
from engine.runner.build import parse_train_cfg
from engine.runner.build_objects import resolve_type
from engine.runner.loop_objects import (
    BaseLoop,
    EpochBasedTrainLoop,
    IterBasedTrainLoop,
    TestLoop,
    ValLoop,
    _TrainLoop,
)

_ENGINE_LOOPS = {
    "EpochBasedTrainLoop": EpochBasedTrainLoop,
    "IterBasedTrainLoop": IterBasedTrainLoop,
}
_EVAL_LOOPS = {"ValLoop": ValLoop, "TestLoop": TestLoop}
# What engine's loops and the Runner read from a custom loop's cfg.
_SCHEDULE_KEYS = ("max_epochs", "max_iters", "val_interval", "val_begin", "dynamic_intervals")


def split_train_cfg(cfg: Any) -> tuple[dict, type | None, dict]:
    """``(parsed train_cfg, custom loop class or None, the loop's keyword arguments)``.

    Raises:
        ValueError: a ``type`` that is neither engine's loop, a class, nor registered in
            ``engine.registry.LOOPS``; a custom loop's cfg without ``max_epochs``/``max_iters``.
    """
    kind = cfg.get("type") if isinstance(cfg, dict) else None
    if kind is None or kind in _ENGINE_LOOPS or kind in _ENGINE_LOOPS.values():
        if isinstance(kind, type):
            cfg = {**cfg, "type": kind.__name__}
        return parse_train_cfg(cfg), None, {}
    cls = resolve_type(kind, _ENGINE_LOOPS, LOOPS, "train_cfg")
    args = {k: v for k, v in cfg.items() if k != "type"}
    if isinstance(cls, type) and issubclass(cls, _TrainLoop):
        by_epoch = cls.by_epoch
    else:
        by_epoch = "max_iters" not in args
    schedule = {k: args[k] for k in _SCHEDULE_KEYS if k in args}
    if "max_epochs" not in schedule and "max_iters" not in schedule:
        raise ValueError(
            f"train_cfg type {getattr(cls, '__name__', cls)!r} needs max_epochs or max_iters "
            "(the run's length, for schedules and checkpoints)"
        )
    return parse_train_cfg({"by_epoch": by_epoch, **schedule}), cls, args


def build_train_loop(runner: Any, loop: Any) -> BaseLoop:
    """A loop as it is; ``dict(type=..., ...)`` or ``dict(by_epoch=..., ...)`` built.

    engine's own loops view the runner's counters (``runner.state``); a registered custom
    loop is called as MMEngine does: ``cls(runner=, dataloader=, **cfg)``.
    """
    if isinstance(loop, BaseLoop):
        return loop
    if not isinstance(loop, dict):
        raise TypeError(f"train_loop should be a Loop object or dict, got {type(loop).__name__}")
    if "type" in loop and "by_epoch" in loop:
        raise RuntimeError(f"Only one of `type` or `by_epoch` can exist in the loop cfg {loop}")
    kind = loop.get("type")
    if kind is None or kind in _ENGINE_LOOPS or kind in _ENGINE_LOOPS.values():
        cfg = parse_train_cfg({**loop, "type": getattr(kind, "__name__", kind)} if kind else loop)
        return (EpochBasedTrainLoop if cfg["by_epoch"] else IterBasedTrainLoop)(
            runner, runner.train_dataloader, cfg
        )
    cls = resolve_type(kind, {}, LOOPS, "train_loop")
    args = {k: v for k, v in loop.items() if k != "type"}
    return cls(runner=runner, dataloader=runner.train_dataloader, **args)


def _build_eval_loop(runner: Any, loop: Any, mode: str) -> BaseLoop:
    if isinstance(loop, BaseLoop):
        return loop
    if not isinstance(loop, dict):
        raise TypeError(f"{mode}_loop should be a Loop object or dict, got {type(loop).__name__}")
    default = ValLoop if mode == "val" else TestLoop
    kind = loop.get("type", default)
    loader, evaluator = getattr(runner, f"{mode}_dataloader"), getattr(runner, f"{mode}_evaluator")
    if kind in _EVAL_LOOPS or kind in _EVAL_LOOPS.values():
        cls = _EVAL_LOOPS.get(kind, kind)
        return cls(runner, loader, evaluator, bool(loop.get("fp16", False)))
    cls = resolve_type(kind, {}, LOOPS, f"{mode}_loop")
    args = {k: v for k, v in loop.items() if k != "type"}
    return cls(runner=runner, dataloader=loader, evaluator=evaluator, **args)


def build_val_loop(runner: Any, loop: Any) -> BaseLoop:
    """A loop as it is; a dict (default ``ValLoop``) over this run's val loader/evaluator."""
    return _build_eval_loop(runner, loop, "val")


def build_test_loop(runner: Any, loop: Any) -> BaseLoop:
    """A loop as it is; a dict (default ``TestLoop``) over this run's test loader/evaluator."""
    return _build_eval_loop(runner, loop, "test")

"""Turn MMEngine-style dicts (train_cfg, loaders, evaluators, hooks, schedules) into objects.

This is the one place where ``dict(type=...)`` is resolved, through explicit tables:
the core only ever sees built objects.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from typing import Any

from engine.dataset.builder import build_dataloader as build_dataset_loader
from engine.evaluator.evaluator import Evaluator
from engine.evaluator.metric import BaseMetric
from engine.hooks.checkpoint_hook import CheckpointHook
from engine.hooks.dist_sampler_seed_hook import DistSamplerSeedHook
from engine.hooks.early_stopping_hook import EarlyStoppingHook
from engine.hooks.ema_hook import EMAHook
from engine.hooks.empty_cache_hook import EmptyCacheHook
from engine.hooks.hook import Hook
from engine.hooks.iter_timer_hook import IterTimerHook
from engine.hooks.logger_hook import LoggerHook
from engine.hooks.naive_visualization_hook import NaiveVisualizationHook
from engine.hooks.nan_guard_hook import NanGuardHook
from engine.hooks.param_scheduler_hook import ParamSchedulerHook
from engine.hooks.prepare_tta_hook import PrepareTTAHook
from engine.hooks.profiler_hook import ProfilerHook
from engine.hooks.runtime_info_hook import RuntimeInfoHook
from engine.hooks.signal_hook import SignalHook
from engine.hooks.sync_buffers_hook import SyncBuffersHook
from engine.hooks.throughput_hook import ThroughputHook
from engine.optim.scheduler.param_scheduler import INF, build_schedule
from engine.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS, HOOKS
from engine.runner.build_objects import build_object, resolve_type
from engine.runner.hf_datasets import refuse_as_loader, torch_formatted
from engine.runner.val_schedule import check_dynamic_intervals

logger = logging.getLogger("engine")

_LOOP_TYPES = {"EpochBasedTrainLoop": True, "IterBasedTrainLoop": False}


def parse_train_cfg(cfg: dict) -> dict:
    """``dict(by_epoch=True, max_epochs=5, val_interval=1)`` or
    ``dict(by_epoch=False, max_iters=..., val_interval=...)`` (MMEngine's loop ``type``
    names work too) -> a complete dict with ``val_begin``/``val_interval``."""
    if not isinstance(cfg, dict):
        raise TypeError(
            f"train_cfg must be a dict such as dict(by_epoch=True, max_epochs=5), got {type(cfg).__name__}"
        )
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind is not None:
        if kind not in _LOOP_TYPES:
            raise ValueError(f"train_cfg type {kind!r} is unknown; accepted: {list(_LOOP_TYPES)}")
        cfg.setdefault("by_epoch", _LOOP_TYPES[kind])
    by_epoch = cfg.pop("by_epoch", "max_epochs" in cfg or "max_iters" not in cfg)
    limit_key = "max_epochs" if by_epoch else "max_iters"
    other_key = "max_iters" if by_epoch else "max_epochs"
    if other_key in cfg:
        raise ValueError(f"train_cfg with by_epoch={by_epoch} takes {limit_key}, not {other_key}")
    limit = cfg.pop(limit_key, None)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"train_cfg {limit_key} must be an int >= 1, got {limit!r}")
    out = {"by_epoch": by_epoch, limit_key: limit}
    for key, default in (("val_interval", 1), ("val_begin", 1)):
        value = cfg.pop(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < (1 if key == "val_interval" else 0)
        ):
            raise ValueError(
                f"train_cfg {key} must be an int >= {1 if key == 'val_interval' else 0}, got {value!r}"
            )
        out[key] = value
    if out["val_begin"] > limit:  # the loops validate from val_begin only, the end included
        logger.warning(
            "train_cfg val_begin=%d is beyond the run (%s=%d): it never validates; "
            "set val_begin <= %d",
            out["val_begin"], limit_key, limit, limit,
        )  # fmt: skip
    out["dynamic_intervals"] = check_dynamic_intervals(cfg.pop("dynamic_intervals", None))
    if cfg:
        raise ValueError(
            f"train_cfg has unknown keys {sorted(cfg)}; accepted: by_epoch, max_epochs/max_iters, val_interval, val_begin, dynamic_intervals"
        )
    return out


# Names engine.dataset's builder knows itself; other names are looked up in the registries.
_OWN_NAMES = {"DefaultSampler", "InfiniteSampler", "pseudo_collate", "default_collate",
              "worker_init_fn"}  # fmt: skip


def build_dataloader(cfg: Any, name: str, keep_sampler: bool = False) -> Any:
    """A built loader is returned as is; MMEngine's dataloader dict (``dataset``, ``sampler``,
    ``collate_fn``, ``worker_init_fn`` as dicts too) becomes a ``DataLoader`` that Accelerate
    shards (see `engine.dataset.builder`; `keep_sampler` keeps engine's samplers, for a loader
    used outside the Runner). A ``type`` may also be a name registered in
    `engine.registry` (``DATASETS``, ``DATA_SAMPLERS``, ``FUNCTIONS``)."""
    if isinstance(cfg, dict):
        for key, registry in (
            ("dataset", DATASETS),
            ("sampler", DATA_SAMPLERS),
            ("collate_fn", FUNCTIONS),
            ("worker_init_fn", FUNCTIONS),
        ):
            spec = cfg.get(key)
            if isinstance(spec, dict) and isinstance(spec.get("type"), str):
                if spec["type"] not in _OWN_NAMES:
                    kind = resolve_type(spec["type"], {}, registry, f"{name} {key}")
                    cfg = {**cfg, key: {**spec, "type": kind}}  # the builder builds it
    refuse_as_loader(cfg, name)  # a datasets.Dataset is not a loader: say how to pass it
    if isinstance(cfg, dict) and "dataset" in cfg:  # datasets rows as tensors, not lists
        cfg = {**cfg, "dataset": torch_formatted(cfg["dataset"])}
    return build_dataset_loader(cfg, name, keep_sampler)


def build_evaluator(cfg: Any, name: str) -> Evaluator | None:
    """An `Evaluator` from one, a metric, a metric dict with ``type`` or a list of them;
    ``None`` stays ``None``."""
    if cfg is None or isinstance(cfg, Evaluator):
        return cfg
    if not isinstance(cfg, BaseMetric | dict | list | tuple):
        raise TypeError(
            f"{name} must be an Evaluator, a BaseMetric, a dict with 'type' or a list of them, got {type(cfg).__name__}"
        )
    return Evaluator(cfg)


def _stock_hooks() -> dict[str, type]:
    return {
        "CheckpointHook": CheckpointHook,
        "DistSamplerSeedHook": DistSamplerSeedHook,
        "EmptyCacheHook": EmptyCacheHook,
        "NaiveVisualizationHook": NaiveVisualizationHook,
        "PrepareTTAHook": PrepareTTAHook,
        "ProfilerHook": ProfilerHook,
        "RuntimeInfoHook": RuntimeInfoHook,
        "SyncBuffersHook": SyncBuffersHook,
        "EarlyStoppingHook": EarlyStoppingHook,
        "EMAHook": EMAHook,
        "IterTimerHook": IterTimerHook,
        "LoggerHook": LoggerHook,
        "ParamSchedulerHook": ParamSchedulerHook,
        "NanGuardHook": NanGuardHook,
        "SignalHook": SignalHook,
        "ThroughputHook": ThroughputHook,
    }


def build_hook(cfg: Any) -> Hook:
    if isinstance(cfg, Hook):
        return cfg
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise TypeError(f"a hook must be a Hook or dict(type=...), got {cfg!r}")
    cfg = dict(cfg)
    priority = cfg.pop("priority", None)
    hook = build_object(cfg, HOOKS, "hook", _stock_hooks())
    if not isinstance(hook, Hook):
        raise TypeError(f"hook type {cfg['type']!r} built a {type(hook).__name__}, not a Hook")
    if priority is not None:
        hook.priority = priority
    return hook


def build_hooks(
    default_hooks: dict | None,
    custom_hooks: list | None,
    schedules: Any,
    checkpoint: Hook | None = None,
) -> list[Hook]:
    """Default hooks (overridable by key, ``None`` switches one off) plus custom hooks;
    `checkpoint` is the default ``checkpoint`` hook (the Runner's, when it has a work_dir)."""

    # "signal": SIGTERM/SIGINT save a checkpoint and stop (engine.signals).
    defaults: dict[str, Any] = {
        "runtime_info": RuntimeInfoHook(),
        "timer": IterTimerHook(),
        "logger": LoggerHook(),
        "signal": SignalHook(),
    }
    if schedules:
        defaults["param_scheduler"] = ParamSchedulerHook(schedules)
    if checkpoint is not None:
        defaults["checkpoint"] = checkpoint
    if default_hooks is not None and not isinstance(default_hooks, dict):
        raise TypeError(
            f"default_hooks must be a dict of name -> Hook/dict/None, got {type(default_hooks).__name__}"
        )
    for key, value in (default_hooks or {}).items():
        _check_default_hook_name(key)
        if key == "param_scheduler" and isinstance(value, dict) and "schedules" not in value:
            # MMEngine's dict(type='ParamSchedulerHook') takes the Runner's schedules.
            kind = value.get("type")
            if kind in ("ParamSchedulerHook", ParamSchedulerHook):
                value = {**value, "schedules": schedules or []}
        if key == "param_scheduler" and value is not None and schedules:
            value = build_hook(value)
            value.schedules = schedules
        defaults[key] = value
    hooks = [build_hook(h) for h in defaults.values() if h is not None]
    if custom_hooks is not None and not isinstance(custom_hooks, list | tuple):
        raise TypeError(
            f"custom_hooks must be a list of Hooks or dicts, got {type(custom_hooks).__name__}"
        )
    hooks += [build_hook(h) for h in custom_hooks or ()]
    return hooks


_DEFAULT_NAMES = ("timer", "logger", "signal", "param_scheduler", "checkpoint",
                  "visualization", "sampler_seed", "runtime_info")  # fmt: skip


def _check_default_hook_name(key: Any) -> None:
    """A key one typo away from a default hook's name would add a second hook beside the
    default one, silently: refuse it. (Other keys name extra hooks, as MMEngine allows.)"""
    close = difflib.get_close_matches(str(key), _DEFAULT_NAMES, n=1, cutoff=0.8)
    if key not in _DEFAULT_NAMES and close:
        raise ValueError(
            f"default_hooks key {key!r} is not a default hook name; did you mean {close[0]!r}? "
            f"(names: {', '.join(_DEFAULT_NAMES)}; other hooks go in custom_hooks)"
        )


def build_schedules(
    cfg: Any, updates_per_epoch: Any, max_epochs: int | None = None, max_iters: int | None = None
) -> Any:
    """A list of schedules (dicts or built), or a dict of such lists keyed by optim
    wrapper member; epoch schedules with ``convert_to_iter_based`` are converted here,
    `updates_per_epoch` being an int or the updates done by the end of each epoch
    (`engine.optim.scheduler.apply.epoch_end_updates`)."""
    if cfg is None:
        return None
    if isinstance(cfg, dict) and "type" not in cfg:
        return {
            name: build_schedules(sub, updates_per_epoch, max_epochs, max_iters)
            for name, sub in cfg.items()
        }
    items = cfg if isinstance(cfg, list | tuple) else [cfg]
    built = []
    for item in items:
        try:
            schedule = build_schedule(item)
        except (TypeError, ValueError) as err:
            raise type(err)(f"param_scheduler entry {item!r}: {err}") from None
        if not hasattr(schedule, "factor_at"):
            raise TypeError(
                f"param_scheduler entries must be dicts such as dict(type='LinearLR', ...) or built schedules, got {item!r}"
            )
        if schedule.end == INF:  # MMEngine fills an open end with the run's length
            limit = max_epochs if schedule.by_epoch else max_iters
            if limit is not None:
                schedule = dataclasses.replace(schedule, end=limit)
        if schedule.by_epoch and schedule.convert_to_iter_based:
            per_epoch = updates_per_epoch
            if callable(per_epoch) and not hasattr(schedule, "step_value"):
                per_epoch = max(1, per_epoch(1))  # a schedule that takes an int (engine.compat)
            schedule = schedule.to_iter_based(per_epoch)
        built.append(schedule)
    return built

"""MMEngine `Runner` arguments beyond engine's core: identity, env_cfg, auto_scale_lr, from_cfg.

Each function takes plain values and returns plain values, so `Runner.__init__` stays a
list of steps. Arguments MMEngine has and engine has no use for are accepted and named in
one log line (`unused_arguments`).
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

import torch
from accelerate.utils import InitProcessGroupKwargs

from engine.optim.optim_wrapper_dict import members

logger = logging.getLogger("engine")

# MMEngine's Runner.__init__ parameters, in its order (Runner.from_cfg reads these keys).
MMENGINE_ARGS = (
    "model", "work_dir", "train_dataloader", "val_dataloader", "test_dataloader", "train_cfg",
    "val_cfg", "test_cfg", "auto_scale_lr", "optim_wrapper", "param_scheduler",
    "val_evaluator", "test_evaluator", "default_hooks", "custom_hooks", "data_preprocessor",
    "load_from", "resume", "launcher", "env_cfg", "log_processor", "log_level", "visualizer",
    "default_scope", "randomness", "experiment_name", "cfg",
)  # fmt: skip
# engine's own Runner arguments that a config may also carry.
ENGINE_ARGS = (
    "mixed_precision", "model_wrapper", "model_wrapper_cfg", "accelerator", "log_with",
    "compile", "prefetch", "nan_policy",
)  # fmt: skip


class MissingComponentError(ValueError, RuntimeError):
    """train()/val()/test() without what they need (MMEngine raises a RuntimeError)."""


def runner_kwargs(cfg: dict) -> dict:
    """The keyword arguments `Runner.from_cfg` passes: MMEngine's and engine's keys of `cfg`
    (others, such as ``_base_`` leftovers or ``dist_params``, are named and skipped)."""
    if not isinstance(cfg, dict):
        raise TypeError(f"Runner.from_cfg takes a Config or dict, got {type(cfg).__name__}")
    known = set(MMENGINE_ARGS) | set(ENGINE_ARGS)
    skipped = sorted(k for k in cfg if k not in known)
    if skipped:
        logger.info("Runner.from_cfg: config keys %s are not Runner arguments; skipped", skipped)
    kwargs = {k: cfg[k] for k in cfg if k in known and k != "cfg"}
    kwargs["cfg"] = cfg
    return kwargs


def run_identity(experiment_name: str | None) -> tuple[str, str]:
    """(timestamp, experiment_name): the name defaults to the timestamp, as in MMEngine."""
    timestamp = time.strftime("%Y%m%d_%H%M%S", time.localtime())
    if experiment_name is not None and not isinstance(experiment_name, str):
        raise TypeError(f"experiment_name must be a str, got {type(experiment_name).__name__}")
    return timestamp, experiment_name or timestamp


def accelerator_kwargs(env_cfg: dict | None) -> dict:
    """Apply ``env_cfg`` (MMEngine's): ``cudnn_benchmark`` now; ``dist_cfg.timeout`` (seconds)
    becomes the process group's timeout. Returns extra `make_accelerator` arguments.
    ``dist_cfg.backend`` and ``mp_cfg`` are Accelerate's launcher's business: said once."""
    if env_cfg is None:
        return {}
    if not isinstance(env_cfg, dict):
        raise TypeError(f"env_cfg must be a dict, got {type(env_cfg).__name__}")
    unknown = sorted(set(env_cfg) - {"cudnn_benchmark", "dist_cfg", "mp_cfg", "resource_limit"})
    if unknown:
        raise ValueError(
            f"env_cfg has unknown keys {unknown}; accepted: cudnn_benchmark, dist_cfg, mp_cfg"
        )
    if env_cfg.get("cudnn_benchmark"):
        torch.backends.cudnn.benchmark = True
    dist_cfg = dict(env_cfg.get("dist_cfg") or {})
    timeout = dist_cfg.pop("timeout", None)
    ignored = sorted(dist_cfg) + (["mp_cfg"] if env_cfg.get("mp_cfg") else [])
    if ignored:
        logger.info(
            "env_cfg %s: the process group and workers come from `accelerate launch`; ignored",
            ignored,
        )
    if timeout is None:
        return {}
    handler = InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=float(timeout)))
    return {"kwargs_handlers": [handler]}


def scale_lr(optim_wrapper: Any, auto_scale_lr: dict | None, loader: Any, processes: int) -> None:
    """MMEngine's ``auto_scale_lr=dict(base_batch_size=..., enable=True)``: multiply every
    param group's lr by global batch / base batch (the global batch is the loader's batch
    times the process count). Call before schedules read the lr."""
    if auto_scale_lr is None or not auto_scale_lr.get("enable", False):
        return
    base = auto_scale_lr.get("base_batch_size")
    if isinstance(base, bool) or not isinstance(base, int) or base < 1:
        raise ValueError(f"auto_scale_lr needs base_batch_size, an int >= 1, got {auto_scale_lr!r}")
    total = global_batch_size(loader, processes)
    if optim_wrapper is None or total is None:
        raise ValueError(
            "auto_scale_lr needs an optim_wrapper and a train_dataloader with a batch_size"
        )
    ratio = total / base
    logger.info(
        "auto_scale_lr: global batch %d over base %d scales the lr by %g", total, base, ratio
    )
    for wrapper in members(optim_wrapper):
        for group in wrapper.optimizer.param_groups:
            group["lr"] *= ratio
            if "initial_lr" in group:
                group["initial_lr"] *= ratio


def global_batch_size(loader: Any, processes: int) -> int | None:
    """Samples per iteration over all processes (Accelerate's prepared loaders know it)."""
    total = getattr(loader, "total_batch_size", None)  # accelerate's DataLoaderShard
    if isinstance(total, int):
        return total
    batch = getattr(loader, "batch_size", None)
    if batch is None:
        batch = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    return batch * processes if isinstance(batch, int) else None


def unused_arguments(**given: Any) -> None:
    """Name, in one line, the MMEngine arguments given that change nothing here."""
    named = sorted(k for k, v in given.items() if v is not None)
    if named:
        logger.info(
            "Runner: %s recorded for MMEngine compatibility; they change nothing in engine",
            ", ".join(named),
        )

"""The optim wrapper's settings written into DeepSpeed's config, and conflicts refused.

Under an Accelerate DeepSpeed launch the DeepSpeed engine, not the `OptimWrapper`, clips and
steps: both happen inside ``accelerator.backward`` at the end of an accumulation window. So
the wrapper's ``clip_grad`` must become DeepSpeed's ``gradient_clipping`` and its
``accumulative_counts`` DeepSpeed's ``gradient_accumulation_steps`` (and Accelerate's, which
DeepSpeed's loss division must match). ``'auto'`` values are filled from the wrapper; a value
the user wrote that says otherwise is a one-line error naming both, never overridden. What
DeepSpeed cannot do (clipping by value, another norm than L2) is refused in one line that
says what to use instead.

Accelerate would otherwise fill an ``'auto'`` ``gradient_clipping`` with 1.0 (clipping a run
that asked for none), and ``'auto'`` micro-batch sizes only from a dataloader passed to the
same ``prepare`` call, which engine's joint model/optimizer preparation does not pass.

Example:
    >>> cfg = {"gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
    ...        "train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 2}}
    >>> deepspeed_updates(cfg, accumulative_counts=4, clip_grad=dict(max_norm=1.0), batch_size=8)
    {'gradient_accumulation_steps': 4, 'gradient_clipping': 1.0, 'train_micro_batch_size_per_gpu': 8}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.optim.grad_clip import parse_clip_grad
from engine.optim.optim_wrapper_dict import members

AUTO = "auto"


def deepspeed_updates(
    config: Mapping[str, Any],
    *,
    accumulative_counts: int,
    clip_grad: dict | None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """The values to write into a DeepSpeed config so that it does what the optim wrapper says.

    Args:
        config: the DeepSpeed config (``DeepSpeedPlugin.deepspeed_config``), not modified.
        accumulative_counts: the optim wrapper's micro-batches per update.
        clip_grad: the optim wrapper's ``clip_grad`` (None: no clipping).
        batch_size: the training loader's batch size per process, for an ``'auto'``
            ``train_micro_batch_size_per_gpu``; None when unknown.

    Returns:
        ``{top-level key: value}`` for every key to set (``'auto'`` ones filled).

    Raises:
        ValueError: one line, for a value in `config` that contradicts the optim wrapper, for
            a ``clip_grad`` DeepSpeed cannot do, or for an optimizer/scheduler section.
    """
    for section, instead in (
        ("optimizer", "optim_wrapper=dict(optimizer=...)"),
        ("scheduler", "param_scheduler"),
    ):
        if section in config:
            raise ValueError(
                f"the DeepSpeed config has a {section!r} section, but engine builds the "
                f"{section} from {instead}: remove the section from the DeepSpeed config"
            )
    updates: dict[str, Any] = {}
    gas = config.get("gradient_accumulation_steps", AUTO)
    if gas == AUTO:
        updates["gradient_accumulation_steps"] = accumulative_counts
    elif gas != accumulative_counts:
        raise ValueError(
            f"the DeepSpeed config has gradient_accumulation_steps={gas!r} (Accelerate writes 1 "
            f"when a config file omits it) but optim_wrapper has accumulative_counts="
            f"{accumulative_counts}: set gradient_accumulation_steps to 'auto' or "
            f"{accumulative_counts}, or accumulative_counts={gas!r}"
        )
    max_norm = _deepspeed_max_norm(clip_grad)
    clipping = config.get("gradient_clipping", AUTO)
    if clipping == AUTO:
        # 0 is DeepSpeed's "no clipping"; Accelerate would fill 'auto' with 1.0.
        updates["gradient_clipping"] = max_norm
    elif _as_float(clipping) != max_norm:
        ours = "clip_grad=None" if max_norm == 0 else f"clip_grad max_norm={max_norm}"
        fix = f"clip_grad=dict(max_norm={clipping})" if _as_float(clipping) else "clip_grad=None"
        raise ValueError(
            f"the DeepSpeed config has gradient_clipping={clipping!r} but optim_wrapper has "
            f"{ours}: set gradient_clipping to 'auto' (or {max_norm}), or {fix}"
        )
    if config.get("train_micro_batch_size_per_gpu") == AUTO:
        if batch_size is None:
            raise ValueError(
                "the DeepSpeed config has train_micro_batch_size_per_gpu='auto' and the "
                "train_dataloader's batch size is unknown (a batch_sampler or no loader): set "
                "train_micro_batch_size_per_gpu to the per-process batch size in the config"
            )
        updates["train_micro_batch_size_per_gpu"] = int(batch_size)
    return updates


def _deepspeed_max_norm(clip_grad: dict | None) -> float:
    """DeepSpeed's ``gradient_clipping`` for `clip_grad`: its max_norm, or 0 for none."""
    clip = parse_clip_grad(clip_grad)
    if clip is None:
        return 0.0
    kind, cfg = clip
    if kind == "value":
        raise ValueError(
            "clip_grad=dict(type='value') is not possible under DeepSpeed, which clips inside "
            "its own step by the global L2 norm only: use clip_grad=dict(max_norm=...)"
        )
    if float(cfg["norm_type"]) != 2.0:
        raise ValueError(
            f"clip_grad norm_type={cfg['norm_type']!r} is not possible under DeepSpeed, which "
            "clips by the global L2 norm only: use clip_grad=dict(max_norm=..., norm_type=2)"
        )
    return float(cfg["max_norm"])


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def loader_batch_size(loader: Any) -> int | None:
    """The batch size of a training loader or of its dict of arguments; None if unknown."""
    size = (
        loader.get("batch_size", 1)
        if isinstance(loader, dict)
        else getattr(loader, "batch_size", None)
    )
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def apply_to_plugin(plugin: Any, updates: Mapping[str, Any]) -> None:
    """Write `updates` into a ``DeepSpeedPlugin``'s config (and its mirrored attributes)."""
    plugin.deepspeed_config.update(updates)
    for key in ("gradient_accumulation_steps", "gradient_clipping"):
        if key in updates and hasattr(plugin, key):
            setattr(plugin, key, updates[key])


def configure_deepspeed(accelerator: Any, optim_wrapper: Any, batch_size: int | None) -> None:
    """Make the active DeepSpeed config (and Accelerate's accumulation steps) follow
    `optim_wrapper`, before ``accelerator.prepare`` builds the DeepSpeed engine.

    Args:
        accelerator: an ``Accelerator`` under a DeepSpeed launch (anything else: no-op).
        optim_wrapper: the run's `OptimWrapper` (an `OptimWrapperDict` of one member works).
        batch_size: the training loader's batch size (global with ``split_batches``), or None.

    Raises:
        ValueError: as `deepspeed_updates`, and for several optimizers (DeepSpeed builds one
            engine from one model and one optimizer).
    """
    plugin = getattr(accelerator, "deepspeed_plugin", None)
    if plugin is None:
        return
    wrappers = members(optim_wrapper)
    if len(wrappers) != 1:
        raise ValueError(
            f"DeepSpeed trains one model with one optimizer, got {len(wrappers)} optim_wrapper "
            "members: use one optimizer (paramwise_cfg for per-module settings), or "
            "model_wrapper='fsdp2' without --use_deepspeed"
        )
    wrapper = wrappers[0]
    if batch_size is not None and getattr(accelerator, "split_batches", False):
        batch_size //= accelerator.num_processes
    updates = deepspeed_updates(
        plugin.deepspeed_config,
        accumulative_counts=wrapper.accumulative_counts,
        clip_grad=wrapper.clip_grad,
        batch_size=batch_size,
    )
    apply_to_plugin(plugin, updates)
    # DeepSpeed divides each micro-batch's loss by its gradient_accumulation_steps; the
    # wrapper undoes Accelerate's division by Accelerate's count: the two must be equal.
    accelerator.gradient_accumulation_steps = wrapper.accumulative_counts

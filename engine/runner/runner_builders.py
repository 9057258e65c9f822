"""MMEngine's public ``Runner.build_*`` methods, as thin functions over engine's builders.

`RunnerAttributes` binds each function as a method, so ported code can call
``runner.build_model(cfg)``, ``runner.build_evaluator([...])``, ``runner.build_train_loop(cfg)``
and the like. Each returns a built object as it is, builds a dict (``type`` a class, one of
engine's names or a registered one), and rejects anything else with a one-line TypeError
naming what is accepted. The Runner itself builds what it runs in ``__init__``; these
methods build extra objects and do not replace the run's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn
from torch.optim import Optimizer

from engine.evaluator import BaseMetric, Evaluator
from engine.hooks.hook import EVENTS, PRIORITIES, priority_value
from engine.logging import MessageHub, MMLogger
from engine.optim import OptimWrapper, OptimWrapperDict, _ParamScheduler
from engine.optim.builder import build_optim_wrapper as _build_optim_wrapper
from engine.registry import EVALUATOR, LOG_PROCESSORS, VISUALIZERS
from engine.runner.build import build_dataloader as _build_dataloader
from engine.runner.build import build_hook, build_hooks, build_schedules
from engine.runner.build_objects import build_model as _build_model
from engine.runner.build_objects import build_object
from engine.runner.log_processor import LogProcessor
from engine.runner.runner_options import scale_lr as _scale_lr
from engine.visualization import Visualizer


def build_model(runner: Any, model: Any) -> nn.Module:
    """An ``nn.Module`` as it is; ``dict(type=...)`` built (not wrapped or moved)."""
    if not isinstance(model, nn.Module | dict):
        raise TypeError(f"model should be an nn.Module or a dict, got {type(model).__name__}")
    return model if isinstance(model, nn.Module) else _build_model(model)


def build_optim_wrapper(runner: Any, optim_wrapper: Any) -> OptimWrapper | OptimWrapperDict:
    """A built wrapper as it is; a dict of built wrappers as an `OptimWrapperDict`; else one
    built for this run's model (`engine.optim.build_optim_wrapper`)."""
    if not isinstance(optim_wrapper, dict | OptimWrapper | OptimWrapperDict | Optimizer):
        raise TypeError(
            "optimizer wrapper should be an OptimWrapper, a torch optimizer or a dict, "
            f"got {type(optim_wrapper).__name__}"
        )
    if isinstance(optim_wrapper, dict) and not {"type", "constructor", "optimizer"} & set(
        optim_wrapper
    ):
        built = [isinstance(v, OptimWrapper) for v in optim_wrapper.values()]
        if all(built):
            return OptimWrapperDict(**optim_wrapper)
        if any(built):
            raise ValueError(
                "each item mush be an optimizer object when 'type' and 'constructor' are not "
                f"in optimizer; got {sorted(optim_wrapper)} mixing built wrappers and dicts"
            )
    return _build_optim_wrapper(runner._raw_model, optim_wrapper, runner.accelerator)


def scale_lr(runner: Any, optim_wrapper: Any, auto_scale_lr: dict | None = None) -> None:
    """Scale every lr of `optim_wrapper` by global batch / ``base_batch_size`` when
    ``auto_scale_lr['enable']`` (the global batch of this run's train_dataloader)."""
    if auto_scale_lr and auto_scale_lr.get("enable", False):
        assert "base_batch_size" in auto_scale_lr, (
            f"auto_scale_lr needs base_batch_size when enabled, got {auto_scale_lr}"
        )
    _scale_lr(optim_wrapper, auto_scale_lr, runner.train_dataloader, runner.world_size)


def build_param_scheduler(runner: Any, scheduler: Any) -> list | dict:
    """MMEngine's stateful schedulers over ``runner.optim_wrapper`` (built first).

    Args:
        scheduler: a scheduler, a dict such as ``dict(type='MultiStepLR', milestones=[1])``,
            a list of them, or for an `OptimWrapperDict` a dict of those keyed by member.

    Returns:
        A list of schedulers (each stepping its optimizer when ``step()`` is called), or a
        dict of such lists per member. An open ``end`` becomes the run's length and
        ``convert_to_iter_based=True`` converts with this run's iterations per epoch.
    """
    wrapper = runner.optim_wrapper
    assert isinstance(wrapper, OptimWrapper | OptimWrapperDict), (
        "`build_optim_wrapper` should be called before `build_param_scheduler`: "
        f"runner.optim_wrapper is a {type(wrapper).__name__}"
    )
    loader = runner.train_dataloader
    per_epoch = len(loader) if loader is not None and hasattr(loader, "__len__") else 1
    limits = (runner.max_epochs, runner.max_iters)

    def bound(cfg: Any, member: Any) -> list:
        items = list(cfg) if isinstance(cfg, list | tuple) else [cfg]
        # Built stateful schedulers stay as they are; the others get their stateful twin.
        return [
            item
            if isinstance(item, _ParamScheduler)
            else _stateful(build_schedules([item], per_epoch, *limits)[0], member)
            for item in items
        ]

    if isinstance(wrapper, OptimWrapper):
        return bound(scheduler, wrapper)
    if isinstance(scheduler, dict) and "type" not in scheduler:
        return {name: bound(cfg, wrapper[name]) for name, cfg in scheduler.items()}
    return {name: bound(scheduler, member) for name, member in wrapper.items()}


def _stateful(schedule: Any, optimizer: Any) -> _ParamScheduler:
    fields = dataclasses.fields(schedule)
    return type(schedule)(
        optimizer, **{f.name: getattr(schedule, f.name) for f in fields if f.init}
    )


def build_evaluator(runner: Any, evaluator: Any) -> Evaluator:
    """An `Evaluator` as it is; a metric dict, a list of metrics/dicts, or
    ``dict(type=<Evaluator subclass>, metrics=[...])`` built."""
    if isinstance(evaluator, Evaluator):
        return evaluator
    if isinstance(evaluator, dict) and "type" in evaluator:
        kind = evaluator["type"]
        found = EVALUATOR.get(kind) if isinstance(kind, str) else kind
        if found is Evaluator or (isinstance(found, type) and issubclass(found, Evaluator)):
            return found(**{k: v for k, v in evaluator.items() if k != "type"})
        return Evaluator(evaluator)
    if isinstance(evaluator, list | tuple) and all(
        isinstance(m, dict | BaseMetric) for m in evaluator
    ):
        return Evaluator(list(evaluator))
    raise TypeError(
        "evaluator should be an Evaluator, a dict with 'type' or a list of metrics or dicts "
        f"(wrap one metric as [metric]), got {type(evaluator).__name__}"
    )


def build_dataloader(runner: Any, dataloader: Any, seed: int | None = None,
                     diff_rank_seed: bool = False) -> Any:  # fmt: skip
    """MMEngine's dataloader dict (or a built loader) -> a ``DataLoader`` (not prepared by
    Accelerate: the Runner prepares its own), for use outside the Runner: its
    ``DefaultSampler``/``InfiniteSampler`` shards by rank itself, as MMEngine's.

    `seed` seeds the sampler when it takes one and, without a ``worker_init_fn``, the
    workers (MMEngine's ``default_worker_init_fn``); with `diff_rank_seed` the sampler draws a
    seed shared by the processes instead, as MMEngine does (the workers keep `seed`)."""
    if isinstance(dataloader, dict) and seed is not None:
        sampler = dataloader.get("sampler")
        if isinstance(sampler, dict) and "seed" not in sampler and not diff_rank_seed:
            dataloader = {**dataloader, "sampler": {**sampler, "seed": seed}}
        if "worker_init_fn" not in dataloader:
            worker_init = {"type": "worker_init_fn", "seed": seed}
            dataloader = {**dataloader, "worker_init_fn": worker_init}
    return _build_dataloader(dataloader, "dataloader", keep_sampler=True)


def build_log_processor(runner: Any, log_processor: Any) -> LogProcessor:
    """A `LogProcessor` as it is; a dict (default type ``LogProcessor``) built."""
    if isinstance(log_processor, LogProcessor):
        return log_processor
    if not isinstance(log_processor, dict):
        raise TypeError(
            "log_processor should be a LogProcessor object or dict, got "
            f"{type(log_processor).__name__}"
        )
    cfg = {"type": LogProcessor, **log_processor}
    return build_object(cfg, LOG_PROCESSORS, "log_processor", {"LogProcessor": LogProcessor})


def build_message_hub(runner: Any, message_hub: dict | None = None) -> MessageHub:
    """``MessageHub.get_instance(name, ...)``; the name defaults to the experiment name."""
    if message_hub is None:
        message_hub = {}
    if not isinstance(message_hub, dict):
        raise TypeError(f"message_hub should be dict or None, got {type(message_hub).__name__}")
    cfg = {"name": runner.experiment_name, **message_hub}
    return MessageHub.get_instance(**cfg)


def build_logger(runner: Any, log_level: int | str = "INFO", log_file: str | None = None,
                 **kwargs: Any) -> MMLogger:  # fmt: skip
    """``MMLogger.get_instance(name, ...)``; the name defaults to the experiment name."""
    kwargs.setdefault("name", runner.experiment_name)
    return MMLogger.get_instance(log_level=log_level, log_file=log_file, **kwargs)


def build_visualizer(runner: Any, visualizer: Any = None) -> Any:
    """A `Visualizer` as it is, a dict, or None (a new one named after the experiment)."""
    try:
        return make_visualizer(visualizer, runner.experiment_name, runner.accelerator)
    except TypeError:
        raise TypeError(
            f"visualizer should be Visualizer object, a dict or None, got {type(visualizer).__name__}"
        ) from None


def make_visualizer(cfg: Any, name: str, accelerator: Any) -> Visualizer:
    """The run's Visualizer: a built one (given the accelerator), a dict, or a new one."""
    if isinstance(cfg, Visualizer):
        cfg.accelerator = cfg.accelerator or accelerator
        return cfg
    if isinstance(cfg, dict):
        args = {k: v for k, v in cfg.items() if k != "type"}
        args.setdefault("name", name)
        if "type" in cfg and cfg["type"] not in ("Visualizer", Visualizer):
            return build_object(cfg, VISUALIZERS, "visualizer", default_args={"name": name})
        if Visualizer.check_instance_created(args["name"]):
            return Visualizer.get_instance(args["name"])
        return Visualizer.get_instance(accelerator=accelerator, **args)
    if cfg is not None:
        raise TypeError(f"visualizer must be a Visualizer or a dict, got {type(cfg).__name__}")
    return Visualizer.get_instance(name, accelerator=accelerator)


def register_hook(runner: Any, hook: Any, priority: int | str | None = None) -> None:
    """Add a `Hook` (or ``dict(type=..., priority=...)``); `priority` overrides both."""
    if not isinstance(hook, dict) and not hasattr(hook, "priority"):
        raise TypeError(f"hook should be an instance of Hook or dict, got {type(hook).__name__}")
    runner.hooks.add(build_hook(hook), priority)


def register_custom_hooks(runner: Any, hooks: list) -> None:
    """`register_hook` for each of `hooks` (Hooks or dicts)."""
    for hook in hooks:
        register_hook(runner, hook)


def register_default_hooks(runner: Any, hooks: dict | None = None) -> None:
    """engine's default hooks for this run (`engine.runner.build.build_hooks`), `hooks`
    replacing or removing (``None``) them by name, as Runner(default_hooks=...)."""
    for hook in build_hooks(hooks, None, runner.param_schedulers, None):
        runner.hooks.add(hook)


def register_hooks(runner: Any, default_hooks: dict | None = None,
                   custom_hooks: list | None = None) -> None:  # fmt: skip
    register_default_hooks(runner, default_hooks)
    register_custom_hooks(runner, custom_hooks or [])


def get_hooks_info(runner: Any) -> str:
    """The hooks each event calls, in call order, as MMEngine prints them::

    after_train_iter:
    (VERY_HIGH   ) RuntimeInfoHook
    ...
    """
    names = {value: name for name, value in PRIORITIES.items()}
    blocks = []
    for event in EVENTS:
        lines = []
        for handler in runner.hooks.handlers(event):  # the hooks that handle `event`
            hook = handler.__self__
            value = priority_value(hook.priority)
            lines.append(f"({names.get(value, value):<12}) {type(hook).__name__:<35}")
        if lines:
            blocks.append(f"{event}:\n" + "\n".join(lines) + "\n -------------------- ")
    return "\n".join(blocks)

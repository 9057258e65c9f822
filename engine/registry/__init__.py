"""MMEngine's registries, for ported code that registers its classes (``@MODELS.register_module()``).

Consulted only where the Runner turns dicts into objects (`engine.runner.build`).
"""

from engine.registry.default_scope import DefaultScope, init_default_scope
from engine.registry.registry import Registry, build_from_cfg


def build_runner_from_cfg(cfg: dict, registry: Registry) -> object:
    """MMEngine's ``RUNNERS.build(cfg)``: ``cfg.runner_type`` (default ``'Runner'``, which
    `engine.runner` registers) built with its ``from_cfg(cfg)``."""
    kind = cfg.get("runner_type", "Runner")
    runner_cls = registry.get(kind) if isinstance(kind, str) else kind
    if runner_cls is None:
        raise KeyError(f"runner_type {kind!r} is not registered in RUNNERS")
    return runner_cls.from_cfg(cfg)


RUNNERS = Registry("runner", build_func=build_runner_from_cfg)
RUNNER_CONSTRUCTORS = Registry("runner constructor")
LOOPS = Registry("loop")
HOOKS = Registry("hook")
STRATEGIES = Registry("strategy")
DATASETS = Registry("dataset")
DATA_SAMPLERS = Registry("data sampler")
TRANSFORMS = Registry("transform")
MODELS = Registry("model")
MODEL_WRAPPERS = Registry("model_wrapper")
WEIGHT_INITIALIZERS = Registry("weight initializer")
OPTIMIZERS = Registry("optimizer")
OPTIM_WRAPPERS = Registry("optim_wrapper")
OPTIM_WRAPPER_CONSTRUCTORS = Registry("optimizer wrapper constructor")
PARAM_SCHEDULERS = Registry("parameter scheduler")
METRICS = Registry("metric")
EVALUATOR = Registry("evaluator")
TASK_UTILS = Registry("task util")
VISUALIZERS = Registry("visualizer")
VISBACKENDS = Registry("vis_backend")
LOG_PROCESSORS = Registry("log_processor")
INFERENCERS = Registry("inferencer")
FUNCTIONS = Registry("function")

__all__ = [
    "DATASETS",
    "DATA_SAMPLERS",
    "EVALUATOR",
    "FUNCTIONS",
    "HOOKS",
    "INFERENCERS",
    "LOG_PROCESSORS",
    "LOOPS",
    "METRICS",
    "MODELS",
    "MODEL_WRAPPERS",
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "PARAM_SCHEDULERS",
    "RUNNERS",
    "RUNNER_CONSTRUCTORS",
    "STRATEGIES",
    "TASK_UTILS",
    "TRANSFORMS",
    "VISBACKENDS",
    "VISUALIZERS",
    "WEIGHT_INITIALIZERS",
    "DefaultScope",
    "Registry",
    "build_from_cfg",
    "init_default_scope",
]

"""MMEngine's registries, for ported code that registers its classes (``@MODELS.register_module()``).

Consulted only where the Runner turns dicts into objects (`engine.runner.build`).
"""

from engine.registry.default_scope import DefaultScope, init_default_scope
from engine.registry.registry import Registry, build_from_cfg

RUNNERS = Registry("runner")
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

"""Optimisation: optim wrappers, building them from MMEngine-style dicts, clipping, schedules."""

from engine.optim import registry_stock  # noqa: F401  (MMEngine's registries know these names)
from engine.optim.amp_optim_wrapper import AmpOptimWrapper
from engine.optim.apex_optim_wrapper import ApexOptimWrapper
from engine.optim.base_optim_wrapper import BaseOptimWrapper
from engine.optim.builder import build_optim_wrapper
from engine.optim.default_constructor import DefaultOptimWrapperConstructor
from engine.optim.optim_wrapper import OptimWrapper
from engine.optim.optim_wrapper_dict import OptimWrapperDict
from engine.optim.optimizer.zero_optimizer import ZeroRedundancyOptimizer
from engine.optim.scheduler import *  # noqa: F403
from engine.optim.scheduler import __all__ as _scheduler_names
from engine.optim.scheduler.stateful import _ParamScheduler  # MMEngine's scheduler base name
from engine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS  # MMEngine exports them here

__all__ = [
    "OptimWrapper", "OptimWrapperDict", "build_optim_wrapper", *_scheduler_names,
    "AmpOptimWrapper", "ApexOptimWrapper", "BaseOptimWrapper", "DefaultOptimWrapperConstructor",
    "OPTIMIZERS", "OPTIM_WRAPPER_CONSTRUCTORS", "ZeroRedundancyOptimizer", "_ParamScheduler",
]  # fmt: skip

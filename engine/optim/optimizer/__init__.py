"""MMEngine's ``mmengine.optim.optimizer`` import path: the same names as `engine.optim`'s
optimizer half (engine keeps the modules in `engine.optim`)."""

from engine.optim.amp_optim_wrapper import AmpOptimWrapper
from engine.optim.apex_optim_wrapper import ApexOptimWrapper
from engine.optim.base_optim_wrapper import BaseOptimWrapper
from engine.optim.builder import build_optim_wrapper
from engine.optim.default_constructor import DefaultOptimWrapperConstructor
from engine.optim.optim_wrapper import OptimWrapper
from engine.optim.optim_wrapper_dict import OptimWrapperDict
from engine.optim.optimizer.zero_optimizer import ZeroRedundancyOptimizer
from engine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS

__all__ = [
    "OPTIM_WRAPPER_CONSTRUCTORS", "OPTIMIZERS", "AmpOptimWrapper", "ApexOptimWrapper",
    "BaseOptimWrapper", "DefaultOptimWrapperConstructor", "OptimWrapper", "OptimWrapperDict",
    "ZeroRedundancyOptimizer", "build_optim_wrapper",
]  # fmt: skip

"""What MMEngine's optimisation registries know from the start, handed to `engine.registry`.

MMEngine registers every ``torch.optim`` optimizer in ``OPTIMIZERS``, its wrappers in
``OPTIM_WRAPPERS``, ``DefaultOptimWrapperConstructor`` in ``OPTIM_WRAPPER_CONSTRUCTORS`` and
its schedulers in ``PARAM_SCHEDULERS``, so ported code builds ``dict(type='SGD', ...)``
through them. engine registers nothing; this module gives those registries lookups they
consult after the names ported code registered (`Registry.add_fallback`). It is imported
once, by `engine.optim`; the registry itself stays below optim and imports none of it.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.optim import scheduler
from engine.optim.amp_optim_wrapper import AmpOptimWrapper
from engine.optim.apex_optim_wrapper import ApexOptimWrapper
from engine.optim.base_optim_wrapper import BaseOptimWrapper
from engine.optim.default_constructor import DefaultOptimWrapperConstructor
from engine.optim.optim_wrapper import OptimWrapper
from engine.optim.optim_wrapper_dict import OptimWrapperDict
from engine.optim.optimizer.zero_optimizer import ZeroRedundancyOptimizer
from engine.registry import (
    OPTIM_WRAPPER_CONSTRUCTORS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    PARAM_SCHEDULERS,
)


def torch_optimizer(name: str) -> type | None:
    """``torch.optim.<name>`` when that is an optimizer class, else None."""
    found: Any = getattr(torch.optim, name, None)
    is_optimizer = isinstance(found, type) and issubclass(found, torch.optim.Optimizer)
    return found if is_optimizer and found is not torch.optim.Optimizer else None


ENGINE_OPTIMIZERS = {"ZeroRedundancyOptimizer": ZeroRedundancyOptimizer}
WRAPPERS = {
    cls.__name__: cls
    for cls in (BaseOptimWrapper, OptimWrapper, AmpOptimWrapper, ApexOptimWrapper, OptimWrapperDict)
}
CONSTRUCTORS = {"DefaultOptimWrapperConstructor": DefaultOptimWrapperConstructor}
SCHEDULERS = {
    name: getattr(scheduler, name)
    for name in scheduler.__all__
    if name.endswith(("LR", "Momentum", "ParamScheduler"))
}

OPTIMIZERS.add_fallback(torch_optimizer)
OPTIMIZERS.add_fallback(ENGINE_OPTIMIZERS)
OPTIM_WRAPPERS.add_fallback(WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS.add_fallback(CONSTRUCTORS)
PARAM_SCHEDULERS.add_fallback(SCHEDULERS)

"""Parameter schedules with MMEngine's names: pure functions of a count, and MMEngine's
stateful schedulers over them (``LinearLR(optimizer, ...)``)."""

from engine.optim.scheduler.param_scheduler import *  # noqa: F403
from engine.optim.scheduler.param_scheduler import (
    __all__,
    _ParamScheduler,  # noqa: F401
)

__all__ = [name for name in __all__ if not name.startswith("_")]

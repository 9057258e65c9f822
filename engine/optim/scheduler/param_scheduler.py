"""Every schedule by MMEngine's name: learning-rate, momentum and generic (``*ParamScheduler``)
versions, and `build_schedule` for ``dict(type='LinearLR', ...)``.

Each is a pure schedule (``LinearLR(start_factor=0.5, end=5)``, what the Runner's
``param_scheduler`` takes) and, called with an optimizer first, MMEngine's stateful
scheduler (``LinearLR(optimizer, start_factor=0.5, end=5)``, ``scheduler.step()``).

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    >>> warmup, decay = LinearLR(start_factor=0.5, end=5), MultiStepLR([3, 6, 9])
    >>> apply_schedules(opt, [warmup, decay], epoch=3, step=0)
    >>> round(opt.param_groups[0]["lr"], 6)
    0.004375
"""

from dataclasses import field, make_dataclass

from engine.optim.scheduler.annealing import CosineAnnealingLR, PolyLR
from engine.optim.scheduler.apply import Schedule, ScheduleChain, apply_schedules
from engine.optim.scheduler.cycles import CosineRestartLR, OneCycleLR
from engine.optim.scheduler.plateau import PlateauTracker, ReduceOnPlateauLR
from engine.optim.scheduler.schedules import (
    INF,
    ConstantLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    StepLR,
    _need,
)
from engine.optim.scheduler.stateful import _ParamScheduler
from engine.registry import PARAM_SCHEDULERS


def _variant(cls: type, suffix: str, param_name: str) -> type:
    """``cls`` renamed with `suffix` for `param_name` (SGD momentum, Adam betas[0]; any key
    for the generic ``*ParamScheduler``, whose stateful form takes it second)."""
    spec = [("param_name", str, field(default=param_name, kw_only=True))]
    name = cls.__name__.replace("LR", suffix)
    doc = f"{cls.__name__} applied to {'any param-group key' if suffix != 'Momentum' else 'momentum'}."
    namespace = {"__doc__": doc, "_named": suffix == "ParamScheduler"}
    variant = make_dataclass(name, spec, bases=(cls,), frozen=True, namespace=namespace)
    variant.__module__ = __name__  # so that repr and pickle find it here
    return variant


ConstantMomentum = _variant(ConstantLR, "Momentum", "momentum")
LinearMomentum = _variant(LinearLR, "Momentum", "momentum")
StepMomentum = _variant(StepLR, "Momentum", "momentum")
MultiStepMomentum = _variant(MultiStepLR, "Momentum", "momentum")
ExponentialMomentum = _variant(ExponentialLR, "Momentum", "momentum")
CosineAnnealingMomentum = _variant(CosineAnnealingLR, "Momentum", "momentum")
PolyMomentum = _variant(PolyLR, "Momentum", "momentum")
CosineRestartMomentum = _variant(CosineRestartLR, "Momentum", "momentum")
ReduceOnPlateauMomentum = _variant(ReduceOnPlateauLR, "Momentum", "momentum")

ConstantParamScheduler = _variant(ConstantLR, "ParamScheduler", "lr")
LinearParamScheduler = _variant(LinearLR, "ParamScheduler", "lr")
StepParamScheduler = _variant(StepLR, "ParamScheduler", "lr")
MultiStepParamScheduler = _variant(MultiStepLR, "ParamScheduler", "lr")
ExponentialParamScheduler = _variant(ExponentialLR, "ParamScheduler", "lr")
CosineAnnealingParamScheduler = _variant(CosineAnnealingLR, "ParamScheduler", "lr")
PolyParamScheduler = _variant(PolyLR, "ParamScheduler", "lr")
OneCycleParamScheduler = _variant(OneCycleLR, "ParamScheduler", "lr")
CosineRestartParamScheduler = _variant(CosineRestartLR, "ParamScheduler", "lr")
ReduceOnPlateauParamScheduler = _variant(ReduceOnPlateauLR, "ParamScheduler", "lr")
for _cls in (ReduceOnPlateauMomentum, ReduceOnPlateauParamScheduler):
    _cls._stateful_base = ReduceOnPlateauLR._stateful_base

_BY_NAME: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        ConstantLR, LinearLR, StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR,
        PolyLR, OneCycleLR, CosineRestartLR, ReduceOnPlateauLR,
        ConstantMomentum, LinearMomentum, StepMomentum, MultiStepMomentum,
        ExponentialMomentum, CosineAnnealingMomentum, PolyMomentum, CosineRestartMomentum,
        ReduceOnPlateauMomentum,
        ConstantParamScheduler, LinearParamScheduler, StepParamScheduler,
        MultiStepParamScheduler, ExponentialParamScheduler, CosineAnnealingParamScheduler,
        PolyParamScheduler, OneCycleParamScheduler, CosineRestartParamScheduler,
        ReduceOnPlateauParamScheduler,
    )
}  # fmt: skip
__all__ = [
    "INF", *_BY_NAME, "PlateauTracker", "Schedule", "ScheduleChain", "_ParamScheduler",
    "apply_schedules", "build_schedule",
]  # fmt: skip


def build_schedule(cfg: dict | Schedule) -> Schedule:
    """Build a schedule from an MMEngine dict such as ``dict(type='LinearLR', end=5)``.

    Args:
        cfg: The dict (``type`` is a schedule name above, a schedule class, or the name of
            a subclass a port registered in ``engine.registry.PARAM_SCHEDULERS``), or an
            already built schedule, which is returned unchanged.
    """
    if not isinstance(cfg, dict):
        return cfg
    kwargs = dict(cfg)
    kind = kwargs.pop("type", None)
    if isinstance(kind, type) and issubclass(kind, tuple(_BY_NAME.values())):
        cls = kind
    else:
        name = kind.__name__ if isinstance(kind, type) else str(kind)
        cls = _BY_NAME.get(name) or PARAM_SCHEDULERS.get(name)
        if not (isinstance(cls, type) and issubclass(cls, tuple(_BY_NAME.values()))):
            cls = None  # a registered class that is not one of these schedules
    _need(
        cls is not None,
        "type",
        kind,
        f"one of {', '.join(_BY_NAME)} or a subclass registered in PARAM_SCHEDULERS",
    )
    return cls(**kwargs)

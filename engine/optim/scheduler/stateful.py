"""MMEngine's stateful schedulers (``LinearLR(optimizer, ...)``, ``step()``) over the pure schedules.

A schedule class called with an optimizer (or an `OptimWrapper`) first builds an instance
of its stateful twin: a subclass of both the schedule and `_ParamScheduler`. It is used
as a ``torch.optim.lr_scheduler`` is: ``step()`` after ``optimizer.step()``, ``last_step``,
``get_last_value()``, ``state_dict()``/``load_state_dict()``. Each ``step()`` applies the
schedule's own ``step_value`` (MMEngine's chainable form) to the param groups' current
values, so several schedulers on one optimizer chain exactly as MMEngine's do.

Example:
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> scheduler = LinearLR(opt, start_factor=0.5, end=3)
    >>> for epoch in range(5):
    ...     train_one_epoch(); scheduler.step()
"""

from __future__ import annotations

import warnings
import weakref
from functools import wraps
from typing import Any

from engine.optim.scheduler.apply import ScheduleArgumentError, read_value, write_value

_ORDER_DOC = "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
_STATEFUL_KEYS = ("last_step", "verbose")
_twins: dict[type, type] = {}


def is_optimizer(obj: Any) -> bool:
    """A torch optimizer or an optim wrapper: anything with param groups and a step."""
    return hasattr(obj, "param_groups") and callable(getattr(obj, "step", None))


def dispatch_new(cls: type, args: tuple, kwargs: dict) -> Any:
    """``__new__`` of the schedules: the stateful twin when an optimizer comes first."""
    if issubclass(cls, _ParamScheduler):
        return object.__new__(cls)
    first = args[0] if args else kwargs.get("optimizer")
    if first is not None and is_optimizer(first):
        return object.__new__(stateful_class(cls))
    if isinstance(first, str) or "optimizer" in kwargs:
        raise TypeError(
            f"{cls.__name__}: ``optimizer`` should be an Optimizer or an OptimWrapper, "
            f"got {type(first).__name__} (or build the schedule without it)"
        )
    return object.__new__(cls)


def stateful_class(schedule_cls: type) -> type:
    """The stateful twin of a schedule class (made once, cached)."""
    twin = _twins.get(schedule_cls)
    if twin is None:
        doc = f"Stateful {schedule_cls.__name__}: MMEngine's scheduler over the schedule."
        namespace = {"__doc__": doc, "__module__": schedule_cls.__module__}
        base = getattr(schedule_cls, "_stateful_base", _ParamScheduler)
        twin = type(schedule_cls.__name__, (base, schedule_cls), namespace)
        twin.__qualname__ = f"{schedule_cls.__qualname__}.stateful"
        _twins[schedule_cls] = twin
    return twin


def _counting(optimizer: Any) -> None:
    """Wrap ``optimizer.step`` to count calls, to warn when the scheduler steps first."""
    method = optimizer.step
    optimizer._global_step = -1
    if getattr(method, "_with_counter", False):
        return
    owner, func = weakref.ref(method.__self__), method.__func__

    @wraps(func)
    def step(*args: Any, **kwargs: Any) -> Any:
        instance = owner()
        instance._global_step += 1
        return func(instance, *args, **kwargs)

    step._with_counter = True
    optimizer.step = step
    optimizer._global_step = -1


class _ParamScheduler:
    """MMEngine's base of stateful schedulers, for `_ParamScheduler` subclasses and checks.

    Subclasses are the stateful twins of the schedules; they take MMEngine's arguments:
    ``(optimizer, *schedule_args, last_step=-1, verbose=False, **schedule_kwargs)``, and
    the generic ``*ParamScheduler`` classes ``(optimizer, param_name, ...)``.

    Args:
        optimizer: a torch optimizer or an `OptimWrapper`.
        param_name: the param-group key scheduled (``'lr'``, ``'momentum'``...).
        last_step: the last step already taken (``-1``: none), to resume without a state
            dict; the param groups must then hold ``initial_<param_name>``.
        verbose: log each new value.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # the twin's schedule part is frozen

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)

    __hash__ = object.__hash__

    def __eq__(self, other: Any) -> bool:
        return self is other

    def __init__(self, optimizer: Any = None, *args: Any, **kwargs: Any) -> None:
        if type(self) is _ParamScheduler:
            raise NotImplementedError(
                "_ParamScheduler is abstract: use a schedule such as LinearLR(optimizer, ...)"
            )
        if not is_optimizer(optimizer):
            raise TypeError(
                f"``optimizer`` should be an Optimizer or an OptimWrapper, got {type(optimizer).__name__}"
            )
        stateful = {k: kwargs.pop(k) for k in _STATEFUL_KEYS if k in kwargs}
        if getattr(self, "_named", False):  # *ParamScheduler(optimizer, param_name, ...)
            if args:
                kwargs["param_name"], args = args[0], args[1:]
            if "param_name" not in kwargs:
                raise TypeError(f"{type(self).__name__} needs param_name, e.g. 'lr'")
        super().__init__(*args, **kwargs)  # the schedule's own (frozen dataclass) init
        self._setup(optimizer, **stateful)
        self.step()

    def _setup(self, optimizer: Any, last_step: int = -1, verbose: bool = False) -> None:
        if not (isinstance(last_step, int) and not isinstance(last_step, bool) and last_step >= -1):
            raise ScheduleArgumentError(
                f"last_step={last_step!r} is invalid; expected an int >= -1"
            )
        name, key = self.param_name, f"initial_{self.param_name}"
        self.optimizer = optimizer
        if getattr(self, "T_max", 0) is None:  # MMEngine fills it in the stateful scheduler
            object.__setattr__(self, "T_max", self.end - self.begin)
        if name == "momentum":  # MMEngine keeps Adam's betas[0] as 'momentum' too
            if not all("momentum" in g or "betas" in g for g in optimizer.param_groups):
                raise ValueError(
                    f"optimizer must support momentum when using momentum scheduler; "
                    f"{type(optimizer).__name__} has neither momentum nor betas"
                )
            for group in optimizer.param_groups:
                if "betas" in group and "momentum" not in group:
                    group["momentum"] = group["betas"][0]
        if last_step == -1:
            prepare = getattr(self, "prepare_groups", None)
            if prepare is not None:
                prepare(optimizer.param_groups, name)
            for group in optimizer.param_groups:
                group.setdefault(key, read_value(group, name))
        else:
            for i, group in enumerate(optimizer.param_groups):
                if key not in group:
                    raise KeyError(
                        f"param {key!r} is not specified in param_groups[{i}] when resuming "
                        f"with last_step={last_step}: load the optimizer's state dict first"
                    )
        self.base_values = [group[key] for group in optimizer.param_groups]
        self.last_step = last_step
        self.verbose = verbose
        self._global_step = -1
        _counting(optimizer)

    def _get_value(self) -> list[float]:
        name, t = self.param_name, self.last_step
        return [
            self.step_value(read_value(group, name), t, base)
            for group, base in zip(self.optimizer.param_groups, self.base_values)
        ]

    def step(self) -> None:
        """Move one count (an epoch or an update) and set the param groups' values."""
        if self._global_step == 0:
            if not hasattr(self.optimizer.step, "_with_counter"):
                warnings.warn(
                    "optimizer.step() was replaced after the scheduler was built; call "
                    f"optimizer.step() before scheduler.step(). See {_ORDER_DOC}",
                    UserWarning,
                    stacklevel=2,
                )
            elif self.optimizer._global_step < 0:
                warnings.warn(
                    "scheduler.step() was called before optimizer.step(): the schedule's "
                    f"first value is skipped. See {_ORDER_DOC}",
                    UserWarning,
                    stacklevel=2,
                )
        self._global_step += 1
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            for i, (group, value) in enumerate(zip(self.optimizer.param_groups, self._get_value())):
                write_value(group, self.param_name, value)
                if self.verbose:
                    print(f"Adjusting {self.param_name} of group {i} to {value:.4e}.")
        self._last_value = [read_value(g, self.param_name) for g in self.optimizer.param_groups]

    def get_last_value(self) -> list[float]:
        """The values the last ``step()`` left in the param groups."""
        return self._last_value

    def state_dict(self) -> dict:
        """Everything but the optimizer (MMEngine's format)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(optimizer={type(self.optimizer).__name__}, last_step={self.last_step})"

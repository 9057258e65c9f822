"""`MessageHub`: the run's scalars and runtime facts, where MMEngine hooks look them up.

engine's loops keep their counters in `TrainState` and pass losses to hooks directly; the
Runner mirrors what MMEngine's hooks read (``train/lr``, ``train/loss``, ``epoch``,
``iter``, ``max_iters``...) into one hub per run so that ported hooks find them.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from engine.logging.history_buffer import HistoryBuffer
from engine.utils.manager import ManagerMixin

logger = logging.getLogger("engine")


class MessageHub(ManagerMixin):
    """Scalars (a `HistoryBuffer` per key) and runtime information (any value per key).

    Args:
        name: the instance name (see `get_instance`).
        log_scalars: initial ``{key: HistoryBuffer}``.
        runtime_info: initial ``{key: value}``.

    Example:
        >>> hub = MessageHub.get_instance('demo')
        >>> hub.update_scalar('train/loss', 0.5)
        >>> hub.get_scalar('train/loss').current()
        0.5
    """

    def __init__(
        self,
        name: str,
        log_scalars: dict | None = None,
        runtime_info: dict | None = None,
        resumed_keys: dict | None = None,
    ) -> None:
        super().__init__(name)
        self._log_scalars: dict[str, HistoryBuffer] = dict(log_scalars or {})
        self._runtime_info: dict[str, Any] = dict(runtime_info or {})
        self._resumed_keys: dict[str, bool] = dict(resumed_keys or {})
        bad = [k for k, v in self._log_scalars.items() if not isinstance(v, HistoryBuffer)]
        if bad:
            raise MessageHubError(
                f"MessageHub log_scalars values must be HistoryBuffers; {bad} are not"
            )
        unknown = set(self._resumed_keys) - set(self._log_scalars) - set(self._runtime_info)
        if unknown:
            raise MessageHubError(
                f"MessageHub resumed_keys {sorted(unknown)} are neither log_scalars nor runtime_info"
            )

    @classmethod
    def get_current_instance(cls) -> MessageHub:
        """The latest hub; one named ``'mmengine'`` is created when there is none (as MMEngine)."""
        if not cls._instance_dict:
            cls.get_instance("mmengine")  # MMEngine's root hub name, which ported code uses
        return super().get_current_instance()

    def update_scalar(self, key: str, value: Any, count: int = 1, resumed: bool = True) -> None:
        """Append `value` (a number or one-element tensor) to the buffer of `key`."""
        if key not in self._log_scalars:
            self._log_scalars[key] = HistoryBuffer()
        self._log_scalars[key].update(value, count)
        self._resumed_keys[key] = resumed

    def update_scalars(self, log_dict: dict, resumed: bool = True) -> None:
        """`update_scalar` for each item; a value may be ``dict(value=..., count=...)``."""
        if not isinstance(log_dict, dict):
            raise TypeError(f"update_scalars takes a dict, got {type(log_dict).__name__}")
        for key, value in log_dict.items():
            if isinstance(value, dict):
                if "value" not in value:
                    raise MessageHubError(
                        f"update_scalars: {key!r} is a dict without 'value', got {value!r}"
                    )
                self.update_scalar(key, value["value"], value.get("count", 1), resumed)
            elif isinstance(value, list | tuple):
                raise MessageHubError(
                    f"update_scalars: {key!r} must be one number (or dict(value=, count=)), "
                    f"got a {type(value).__name__}"
                )
            else:
                self.update_scalar(key, value, resumed=resumed)

    def update_info(self, key: str, value: Any, resumed: bool = True) -> None:
        self._runtime_info[key] = value
        self._resumed_keys[key] = resumed

    def update_info_dict(self, info_dict: dict, resumed: bool = True) -> None:
        for key, value in info_dict.items():
            self.update_info(key, value, resumed)

    def pop_info(self, key: str, default: Any = None) -> Any:
        return self._runtime_info.pop(key, default)

    @property
    def log_scalars(self) -> dict[str, HistoryBuffer]:
        return self._log_scalars

    @property
    def runtime_info(self) -> dict[str, Any]:
        return self._runtime_info

    def get_scalar(self, key: str) -> HistoryBuffer:
        """The buffer of `key`; a KeyError naming the keys there are when missing."""
        if key not in self._log_scalars:
            raise KeyError(
                f"{key!r} is not a scalar of MessageHub {self.instance_name!r}; "
                f"it has {sorted(self._log_scalars)}"
            )
        return self._log_scalars[key]

    def get_info(self, key: str, default: Any = None) -> Any:
        return self._runtime_info.get(key, default)

    def state_dict(self) -> dict:
        """The keys marked ``resumed`` (the default), for a checkpoint: the scalar buffers,
        and copies of the infos (the object itself when it cannot be copied)."""
        return {
            "log_scalars": {k: v for k, v in self._log_scalars.items() if self._resumed(k)},
            "runtime_info": {
                k: _copy(k, v) for k, v in self._runtime_info.items() if self._resumed(k)
            },
            "resumed_keys": dict(self._resumed_keys),
        }

    def load_state_dict(self, state: dict | MessageHub) -> None:
        """Take another hub's contents, or a `state_dict`; scalars that are not
        `HistoryBuffer`s and resumed flags of absent keys are skipped with a warning."""
        if isinstance(state, MessageHub):
            self._log_scalars.update(copy.deepcopy(state._log_scalars))
            self._runtime_info.update({k: _copy(k, v) for k, v in state._runtime_info.items()})
            self._resumed_keys.update(state._resumed_keys)
            return
        for key, value in state.get("log_scalars", {}).items():
            if not isinstance(value, HistoryBuffer):
                logger.warning("MessageHub: skipping scalar %r, not a HistoryBuffer", key)
                continue
            self._log_scalars[key] = copy.deepcopy(value)
        for key, value in state.get("runtime_info", {}).items():
            self._runtime_info[key] = _copy(key, value)
        for key, value in state.get("resumed_keys", {}).items():
            if key not in self._log_scalars and key not in self._runtime_info:
                logger.warning(
                    "MessageHub: resumed flag of %r, which it does not hold, skipped", key
                )
                continue
            self._resumed_keys[key] = value

    def _resumed(self, key: str) -> bool:
        return self._resumed_keys.get(key, True)


class MessageHubError(ValueError, AssertionError):
    """A bad MessageHub argument (MMEngine asserts these)."""


def _copy(key: str, value: Any) -> Any:
    """A deep copy of an info value, or the value itself when it cannot be copied."""
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - any object may refuse; its reference is still useful
        logger.warning("MessageHub: %r cannot be copied; keeping a reference", key)
        return value

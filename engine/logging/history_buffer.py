"""`HistoryBuffer`: the recent values of one logged scalar (MMEngine's, for ported hooks)."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch


class HistoryBufferError(ValueError, AssertionError):
    """Mismatched initial histories (MMEngine asserts this)."""


class HistoryBufferTypeError(TypeError, ValueError):
    """More than one value given to `HistoryBuffer.update`."""


class HistoryBuffer:
    """Keep the last `max_length` values of a scalar and how many samples each stood for.

    Args:
        log_history: initial values.
        count_history: the count of each initial value (1 each when omitted).
        max_length: older values are dropped beyond this many.

    A one-element device tensor is kept on its device (every `_BATCH` of them stacked into
    one tensor there, which does not wait for the device) and read back only when the
    buffer is read, all in one transfer: logging a loss every iteration never syncs.

    Example:
        >>> buf = HistoryBuffer()
        >>> buf.update(2.0); buf.update(4.0)
        >>> buf.current(), buf.mean()
        (4.0, 3.0)
    """

    _statistics_methods: dict[str, Any] = {}  # MMEngine's registered extra statistics

    def __init__(
        self, log_history: Any = (), count_history: Any = (), max_length: int = 1000000
    ) -> None:
        self.max_length = max_length
        # Any array-like, flattened (as MMEngine's np.append does on the first update).
        log_history = np.asarray(log_history).reshape(-1).tolist()
        count_history = np.asarray(count_history).reshape(-1).tolist()
        if count_history and len(count_history) != len(log_history):
            raise HistoryBufferError(
                f"HistoryBuffer log_history ({len(log_history)} values) and count_history "
                f"({len(count_history)}) differ in length"
            )
        self._log = deque(log_history, maxlen=max_length)
        self._count = deque(count_history or [1] * len(log_history), maxlen=max_length)
        self._pending: list = []  # (0-d device tensor, count) not read back yet
        self._chunks: list = []  # (1-d device tensor, counts): stacked pending values

    _BATCH = 64

    def update(self, value: Any, count: int = 1) -> None:
        """Append `value` (a number or a one-element tensor/array) standing for `count`."""
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise HistoryBufferTypeError(
                    f"HistoryBuffer takes one-element tensors, got shape {tuple(value.shape)}"
                )
            # Kept as is (detached): the few microseconds per call matter every iteration.
            self._pending.append((value.detach() if value.requires_grad else value, count))
            if len(self._pending) >= self._BATCH:
                self._stack_pending()
            return
        if hasattr(value, "item"):
            if getattr(value, "size", 1) != 1:
                raise HistoryBufferTypeError(
                    f"HistoryBuffer takes one value at a time, got an array of {value.size}"
                )
            value = value.item()
        if not isinstance(value, int | float):
            raise TypeError(f"HistoryBuffer values must be numbers, got {type(value).__name__}")
        self._flush()
        self._log.append(value)
        self._count.append(count)

    def _stack_pending(self) -> None:
        """Stack the pending tensors into one on their device: no host sync."""
        tensors, counts = zip(*self._pending)
        self._pending = []
        try:
            chunk = torch.stack([t if t.dim() == 0 else t.reshape(()) for t in tensors])
        except RuntimeError:  # mixed devices or dtypes: convert one by one
            chunk = torch.stack([_wide(t.reshape(()).to(tensors[0].device)) for t in tensors])
        self._chunks.append((chunk, counts))

    def _flush(self) -> None:
        """Read every value still on the device back to the host, in one transfer."""
        if self._pending:
            self._stack_pending()
        if not self._chunks:
            return
        device = self._chunks[0][0].device
        values = torch.cat([_wide(chunk.to(device)) for chunk, _ in self._chunks]).tolist()
        self._log.extend(values)
        for _, counts in self._chunks:
            self._count.extend(counts)
        self._chunks = []

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, counts) as arrays."""
        self._flush()
        return np.array(self._log), np.array(self._count)

    # MMEngine's attribute names, which ported code reads.
    @property
    def _log_history(self) -> np.ndarray:
        return self.data[0]

    @property
    def _count_history(self) -> np.ndarray:
        return self.data[1]

    def _window(self, window_size: int | None) -> list:
        self._flush()
        values = list(self._log)
        return values if window_size is None else values[-window_size:]

    def mean(self, window_size: int | None = None) -> float:
        """Mean of the last `window_size` values (all when None), weighted by their counts."""
        values = self._window(window_size)
        counts = list(self._count)[-len(values) :] if values else []
        if not values:
            return float("nan")
        # numpy's summation (as MMEngine's buffer), so the mean is bitwise the same as there.
        return float(np.asarray(values).sum() / max(np.asarray(counts).sum(), 1))

    def current(self) -> float:
        """The latest value; an error when empty."""
        self._flush()
        if not self._log:
            raise ValueError("HistoryBuffer is empty: nothing was updated yet")
        return self._log[-1]

    def max(self, window_size: int | None = None) -> float:
        return max(self._window(window_size))

    def min(self, window_size: int | None = None) -> float:
        return min(self._window(window_size))

    @classmethod
    def register_statistics(cls, method: Any) -> Any:
        """Decorator (MMEngine's): make ``method(buffer, ...)`` a statistic by its name.

        Example:
            >>> @HistoryBuffer.register_statistics
            ... def last_two_sum(self):
            ...     return sum(self.data[0][-2:])
        """
        cls._statistics_methods[method.__name__] = method
        return method

    def statistics(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """MMEngine's by-name access: ``'mean'``, ``'current'``, ``'max'``, ``'min'`` or a
        name given to `register_statistics`."""
        if method in ("mean", "current", "max", "min"):
            return getattr(self, method)(*args, **kwargs)
        if method in self._statistics_methods:
            return self._statistics_methods[method](self, *args, **kwargs)
        known = ["mean", "current", "max", "min", *self._statistics_methods]
        raise KeyError(f"unknown statistic {method!r}; accepted: {', '.join(known)}")

    def __len__(self) -> int:
        self._flush()
        return len(self._log)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """float64 where the device has it (MPS has not), so stacking mixed dtypes works."""
    return t.to(torch.float32 if t.device.type == "mps" else torch.float64)

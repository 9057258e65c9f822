"""`HistoryBuffer`: the recent values of one logged scalar (MMEngine's, for ported hooks)."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch


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

    def __init__(
        self, log_history: Any = (), count_history: Any = (), max_length: int = 1000000
    ) -> None:
        self.max_length = max_length
        log_history, count_history = list(log_history), list(count_history)
        if count_history and len(count_history) != len(log_history):
            raise ValueError("HistoryBuffer log_history and count_history differ in length")
        self._log = deque(log_history, maxlen=max_length)
        self._count = deque(count_history or [1] * len(log_history), maxlen=max_length)
        self._pending: list = []  # (0-d device tensor, count) not read back yet
        self._chunks: list = []  # (1-d device tensor, counts): stacked pending values

    _BATCH = 64

    def update(self, value: Any, count: int = 1) -> None:
        """Append `value` (a number or a one-element tensor/array) standing for `count`."""
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"HistoryBuffer takes one-element tensors, got {value.shape}")
            # Kept as is (detached): the few microseconds per call matter every iteration.
            self._pending.append((value.detach() if value.requires_grad else value, count))
            if len(self._pending) >= self._BATCH:
                self._stack_pending()
            return
        if hasattr(value, "item"):
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

    def statistics(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """MMEngine's by-name access: ``'mean'``, ``'current'``, ``'max'``, ``'min'``."""
        if method not in ("mean", "current", "max", "min"):
            raise KeyError(f"unknown statistic {method!r}; accepted: mean, current, max, min")
        return getattr(self, method)(*args, **kwargs)

    def __len__(self) -> int:
        self._flush()
        return len(self._log)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """float64 where the device has it (MPS has not), so stacking mixed dtypes works."""
    return t.to(torch.float32 if t.device.type == "mps" else torch.float64)

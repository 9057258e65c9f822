"""MMEngine's ``engine.runner.autocast``: ``torch.autocast`` with the device chosen for you.

Training under mixed precision is Accelerate's (``Runner(mixed_precision=...)``, inside
``OptimWrapper.optim_context``); this is for ported code that opens an autocast region itself.
"""

from __future__ import annotations

import torch

from engine.device import get_device


def autocast(
    device_type: str | None = None,
    dtype: torch.dtype | None = None,
    enabled: bool = True,
    cache_enabled: bool | None = None,
) -> torch.autocast:
    """``torch.autocast`` on `device_type` (default: this process's best device, as
    `engine.device.get_device`); `dtype` defaults to torch's choice for the device
    (float16 on CUDA, bfloat16 on the CPU).

    Example:
        >>> with autocast(device_type='cpu'):
        ...     y = torch.nn.Linear(2, 2)(torch.ones(1, 2))  # bfloat16
    """
    device_type = device_type or get_device()
    kwargs = {} if cache_enabled is None else {"cache_enabled": cache_enabled}
    return torch.autocast(device_type, dtype=dtype, enabled=enabled, **kwargs)

"""`ApexOptimWrapper`: MMEngine's NVIDIA-apex wrapper, which engine does not provide.

Apex's AMP is superseded by ``torch.autocast``; the name exists so that ported code imports,
and building it says what to use instead.
"""

from __future__ import annotations

from typing import Any

from engine.optim.optim_wrapper import OptimWrapper


class ApexOptimWrapper(OptimWrapper):
    """Not supported: use ``AmpOptimWrapper`` (``dict(type='AmpOptimWrapper', dtype=...)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "ApexOptimWrapper (NVIDIA apex) is not supported by engine; use "
            "dict(type='AmpOptimWrapper', dtype='float16' or 'bfloat16'), which maps onto "
            "Accelerate's mixed precision"
        )

"""Read ``.pth`` files weights-only, MMEngine's and MMCV's own checkpoints included.

Used by ``load_from`` (`engine.checkpoint.model_weights`) and MMEngine's ``.pth`` helpers
(`engine.runner.checkpoint`).

A checkpoint saved by MMEngine's Runner holds, besides tensors, NumPy values (``meta``) and
MMEngine objects (``message_hub``'s ``HistoryBuffer``). ``torch.load(weights_only=True)``
refuses those, and ``weights_only=False`` would need ``mmengine`` installed and would run
whatever the file names. Here NumPy's array and scalar types are allowed, and each class
from ``mmengine``/``mmcv`` comes back as an inert `PickledRecord` holding its pickled state
(no code of the file runs, nothing is imported). Any other object is refused, naming it.

Example:
    >>> ckpt = load_pth('mmdet_epoch_12.pth', 'cpu', 'mmdet_epoch_12.pth')
    >>> ckpt['message_hub']['log_scalars']['train/loss'].state['_log_history']
    array([...])
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import Any

import numpy as np
import torch

__all__ = ["PickledRecord", "load_mmengine_pth", "load_pth"]

# Classes whose pickled state may come back as a record: MMEngine's and MMCV's own.
_RECORDED_PACKAGES = ("mmengine", "mmcv")
# NumPy >= 1.25 pickles a dtype through its class (numpy.dtypes.Float64DType, ...).
_DTYPES = getattr(np, "dtypes", None)
_NUMPY_DTYPES = (
    [getattr(_DTYPES, n) for n in dir(_DTYPES) if n.endswith("DType")] if _DTYPES else []
)


class PickledRecord:
    """What an MMEngine/MMCV object in a checkpoint becomes: its class name (``type_name``),
    the arguments it was created with (``args``) and its pickled ``state``."""

    type_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"PickledRecord({self.type_name})"


def _record_class(qualified: str) -> tuple[type, str]:
    module, _, name = qualified.rpartition(".")
    cls = type(name, (PickledRecord,), {"__module__": module, "type_name": qualified})
    return cls, qualified


def _allowed(qualified: str) -> Any:
    """The stand-in (or NumPy's own callable) for a global the file names; None: refuse."""
    module, _, name = qualified.rpartition(".")
    root = module.split(".")[0]
    if root == "numpy":
        found = getattr(importlib.import_module(module), name, None)
        numpy_types = (np.ndarray, np.dtype, np.generic)
        is_data = isinstance(found, type) and issubclass(found, numpy_types)
        return found if is_data or name in ("_reconstruct", "scalar") else None
    if root in _RECORDED_PACKAGES:
        return _record_class(qualified)
    return None


def load_pth(source: Any, map_location: Any, name: Any, weights_only: bool = True) -> Any:
    """``torch.load`` of a path or bytes file object, weights-only by default.

    Args:
        source: a path or a seekable binary file object.
        map_location: as ``torch.load``.
        name: the file, for messages.
        weights_only: False only for a file you trust (its pickled code runs).

    Raises:
        pickle.UnpicklingError: one line naming the objects that were refused.
    """
    if not weights_only:
        return torch.load(source, map_location=map_location, weights_only=False)
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        pass
    if isinstance(source, io.IOBase):
        source.seek(0)
    needed = torch.serialization.get_unsafe_globals_in_checkpoint(source)
    allowed = {g: _allowed(g) for g in needed}
    refused = sorted(g for g, found in allowed.items() if found is None)
    if refused:
        raise pickle.UnpicklingError(
            f"{name} was refused by weights-only loading: it holds {', '.join(refused)}, "
            "which are not tensors, containers, NumPy values or MMEngine/MMCV records. Only "
            "if you trust the file, load it with weights_only=False (its pickled code runs)"
        )
    if isinstance(source, io.IOBase):
        source.seek(0)
    with torch.serialization.safe_globals([*allowed.values(), *_NUMPY_DTYPES]):
        return torch.load(source, map_location=map_location, weights_only=True)


def load_mmengine_pth(path: Any, refused: Exception) -> Any:
    """`load_pth` of a file plain weights-only loading refused: an MMEngine/MMCV runner
    checkpoint loads; for anything else the original error `refused` is raised."""
    try:
        return load_pth(path, "cpu", path)
    except Exception:  # refused again, or corrupt: the first error says it best
        raise refused from None

"""MMEngine's ``mmengine.device`` queries, for ported code: which accelerator this process has.

engine places tensors through Accelerate (``accelerator.device``); these answer the questions
ported hooks and tests ask. Vendor devices engine does not run on (NPU, MLU, MUSA, DIPU)
answer False.
"""

from __future__ import annotations

import torch


def is_cuda_available() -> bool:
    return torch.cuda.is_available()


def is_mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def is_npu_available() -> bool:
    return False


def is_mlu_available() -> bool:
    return False


def is_musa_available() -> bool:
    return False


def is_dipu_available() -> bool:
    return False


def is_npu_support_full_precision() -> bool:
    return False


def get_device() -> str:
    """``'cuda'``, ``'mps'`` or ``'cpu'``: the best device this process sees."""
    return "cuda" if is_cuda_available() else "mps" if is_mps_available() else "cpu"


def get_max_cuda_memory(device: torch.device | None = None) -> int:
    """Peak allocated CUDA memory in MiB since the last call (the peak is then reset)."""
    if not is_cuda_available():
        return 0
    peak = torch.cuda.max_memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    return int(peak // 2**20)


__all__ = [
    "get_device",
    "get_max_cuda_memory",
    "is_cuda_available",
    "is_dipu_available",
    "is_mlu_available",
    "is_mps_available",
    "is_musa_available",
    "is_npu_available",
    "is_npu_support_full_precision",
]

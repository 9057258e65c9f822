"""CPU threads per process, so that several processes (or a notebook beside them) share cores.

torch starts one intra-op thread per physical core in every process. Four processes on four
cores then run sixteen threads that spin-wait on each other: a small model trains several
times slower than with one thread per process. `Runner` calls `set_cpu_threads` with the
number of processes on this machine, unless the user chose already (``OMP_NUM_THREADS``,
or ``torch.set_num_threads`` before the Runner was built).

Example:
    >>> set_cpu_threads(local_processes=2)   # on 8 cores: 4 threads in each process
    4
"""

from __future__ import annotations

import os

import torch

_TORCH_DEFAULT = torch.get_num_threads()  # torch's choice, read before anyone changes it


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's or SLURM's share)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def set_cpu_threads(local_processes: int) -> int | None:
    """Give each of `local_processes` processes an equal share of the cores (at least one).

    Args:
        local_processes: processes of this run on this machine.

    Returns:
        The thread count set, or None when the user's own choice was kept.
    """
    if "OMP_NUM_THREADS" in os.environ or torch.get_num_threads() != _TORCH_DEFAULT:
        return None
    threads = max(1, min(_TORCH_DEFAULT, available_cores() // max(1, local_processes)))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads

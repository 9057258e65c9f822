"""MMEngine's ``mmengine.dist`` names, thin over ``torch.distributed`` (one process: no-ops).

Accelerate creates the process group (``accelerate launch``); these only read and use it,
so a ported hook or metric that calls ``get_rank()`` or ``all_gather(x)`` runs unchanged.
"""

from engine.dist.comm import (
    all_gather,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
    collect_results,
    get_dist_info,
    get_local_rank,
    get_rank,
    get_world_size,
    is_distributed,
    is_main_process,
    master_only,
)

__all__ = [
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "collect_results",
    "get_dist_info",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "is_main_process",
    "master_only",
]

"""Data loading as MMEngine names it: collate functions, samplers and the worker seeding."""

from engine.dataset.sampler import DefaultSampler, InfiniteSampler
from engine.dataset.utils import default_collate, pseudo_collate, worker_init_fn

# MMEngine's older name for its table of collate functions; a ported config that looks a
# collate function up by name finds these.
COLLATE_FUNCTIONS = {"pseudo_collate": pseudo_collate, "default_collate": default_collate}

__all__ = [
    "COLLATE_FUNCTIONS",
    "DefaultSampler",
    "InfiniteSampler",
    "default_collate",
    "pseudo_collate",
    "worker_init_fn",
]

"""``model_wrapper='fsdp2'``: shard a model with torch's ``fully_shard`` (FSDP2), on any backend.

Accelerate applies FSDP only on GPUs and only from its own launcher configuration. This
wrapper shards the model itself, so users without an FSDP config, and CPU processes over
gloo (this project's tests), get sharded parameters too: each repeated block (a module
class that occurs several times, such as a transformer layer) becomes one FSDP unit, then
the root. Parameters become DTensors sharded on dim 0 across the processes; the optimizer
is built after wrapping, so it holds the sharded parameters; gradients are reduce-scattered
once per accumulation window (`set_gradient_sync`), and clipping by norm uses the global
norm because the norm of a DTensor gradient is reduced over all shards.

Example:
    >>> runner = Runner(model, work_dir, model_wrapper='fsdp2', ...)   # under accelerate launch
    >>> runner = Runner(model, work_dir, model_wrapper=dict(type='fsdp2', reshard_after_forward=False))
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from torch import nn

logger = logging.getLogger("engine")

FSDP2_NAMES = ("fsdp2", "FSDP2", "fully_shard")


def fully_shard_model(
    model: nn.Module,
    accelerator: Any,
    *,
    reshard_after_forward: bool = True,
    units: tuple[type, ...] | None = None,
) -> nn.Module:
    """Shard `model` in place across the run's processes with ``fully_shard``.

    Args:
        model: the user's model; its ``train_step``/``val_step`` stay its own.
        accelerator: the run's ``Accelerator`` (for the device and the process count).
        reshard_after_forward: free the gathered parameters after each unit's forward
            (memory) or keep them until the backward (speed).
        units: the module classes that become FSDP units; default: every class with
            parameters that occurs at least twice (repeated blocks), else each direct child
            with parameters.

    Returns:
        `model` itself (its class is swapped for an FSDP subclass by ``fully_shard``).
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model.to(accelerator.device)
    if accelerator.num_processes == 1:
        logger.info("model_wrapper='fsdp2' in one process: the model is not sharded")
        return model
    mesh = init_device_mesh(accelerator.device.type, (accelerator.num_processes,))
    for module in _units(model, units):
        fully_shard(module, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)
    return model


def _units(model: nn.Module, units: tuple[type, ...] | None) -> list[nn.Module]:
    """The sub-modules to shard as units: the outermost of the chosen ones (a unit inside
    another unit would only split the outer one's parameters further)."""

    def has_params(m: nn.Module) -> bool:
        return any(p.requires_grad for p in m.parameters())

    subs = [m for _, m in model.named_modules() if m is not model and has_params(m)]
    if units is None:
        counts = Counter(type(m) for m in subs)
        # Leaf layers (Linear, Conv) repeat too; only containers of several layers are
        # worth a unit of their own.
        repeated = [m for m in subs if counts[type(m)] > 1 and len(list(m.children())) > 0]
        chosen = repeated or [m for m in model.children() if has_params(m)]
    else:
        chosen = [m for m in subs if isinstance(m, units)]
    # Drop a unit nested inside another chosen unit: the outer one covers its parameters.
    ids = {id(m) for m in chosen}
    nested = {id(c) for m in chosen for c in m.modules() if c is not m and id(c) in ids}
    return [m for m in chosen if id(m) not in nested]


def is_fsdp2(module: nn.Module) -> bool:
    """Whether `module` was sharded by ``fully_shard``."""
    return callable(getattr(type(module), "set_requires_gradient_sync", None))


def set_gradient_sync(model: nn.Module, sync: bool) -> None:
    """Let the FSDP2 modules of `model` reduce-scatter in the coming backward (or not).

    FSDP2 reads this flag during the backward, unlike DDP's ``no_sync`` which is armed by
    the forward. Accelerate's ``no_sync`` context restores the flag when the context exits,
    which is before the backward in MMEngine's ``with optim_context(model): forward`` then
    ``update_params(loss)``: every micro-batch would reduce-scatter. The flag is set per
    micro-batch instead, and stays until the next one.
    """
    if is_fsdp2(model):
        model.set_requires_gradient_sync(sync, recurse=True)

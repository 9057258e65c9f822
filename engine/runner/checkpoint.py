"""MMEngine's ``.pth`` helpers: a model's state dict to and from a single torch file.

For weights migrating users bring (``load_checkpoint(model, 'mmdet_r50.pth',
map_location='cpu', revise_keys=[(r'^backbone\\.', '')])``) and for files other tools read.
engine's own checkpoints are atomic folders (`engine.checkpoint`); these helpers never write
or read those. Reads are weights-only (``torch.load(weights_only=True)``) unless the caller
passes ``weights_only=False`` for a file they trust. Wrappers (DDP, DataParallel, classes
in ``MODEL_WRAPPERS``) are looked through at any depth, so keys are the plain model's.

Example:
    >>> save_checkpoint({'state_dict': get_state_dict(model)}, 'model.pth')
    >>> load_checkpoint(other, 'model.pth', map_location='cpu', strict=True)
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from engine.checkpoint.find import find_latest_checkpoint
from engine.dist.comm import get_rank
from engine.fileio.file_client import get_file_backend
from engine.logging.mm_logger import print_log
from engine.model.base_module import is_model_wrapper
from engine.model.test_time_aug import BaseTTAModel
from engine.runner.checkpoint_loaders import (
    CheckpointLoader,
    load_from_ceph,
    load_from_http,
    load_from_local,
    load_from_mmcls,
    load_from_openmmlab,
    load_from_pavi,
    load_from_torchvision,
)

__all__ = [
    "CheckpointLoader",
    "find_latest_checkpoint",
    "get_state_dict",
    "load_checkpoint",
    "load_from_ceph",
    "load_from_http",
    "load_from_local",
    "load_from_mmcls",
    "load_from_openmmlab",
    "load_from_pavi",
    "load_from_torchvision",
    "load_state_dict",
    "save_checkpoint",
    "weights_to_cpu",
]


def _unwrap(module: nn.Module) -> nn.Module:
    while is_model_wrapper(module) or isinstance(module, BaseTTAModel):
        module = module.module
    return module


def load_state_dict(
    module: nn.Module, state_dict: dict, strict: bool = False, logger: Any = None
) -> None:
    """Copy ``state_dict`` into ``module``, as ``nn.Module.load_state_dict`` but looking
    through wrappers at every depth and, with ``strict=False``, skipping (and logging in one
    message) missing, unexpected and mis-shaped keys instead of raising.

    Modules' ``_load_from_state_dict`` see the version metadata the dict carries, so a
    module can rename keys of old checkpoints; load-state-dict post hooks may clear the
    reported keys. ``num_batches_tracked`` buffers are never reported missing.

    Raises:
        RuntimeError: ``strict=True`` and anything did not match.
    """
    missing: list[str] = []
    unexpected: list[str] = []
    errors: list[str] = []
    metadata = getattr(state_dict, "_metadata", None)
    state = OrderedDict(state_dict)  # _load_from_state_dict may rename keys in its input
    if metadata is not None:
        state._metadata = metadata  # type: ignore[attr-defined]

    def load(mod: nn.Module, local: dict, prefix: str) -> None:
        mod = _unwrap(mod)
        local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
        mod._load_from_state_dict(local, prefix, local_metadata, True, missing, unexpected, errors)
        for name, child in mod._modules.items():
            if child is not None:
                child_prefix = f"{prefix}{name}."
                load(
                    child,
                    {k: v for k, v in local.items() if k.startswith(child_prefix)},
                    child_prefix,
                )
        report = torch.nn.modules.module._IncompatibleKeys(missing, unexpected)
        for hook in getattr(mod, "_load_state_dict_post_hooks", {}).values():
            if hook(mod, report) is not None:
                raise RuntimeError(
                    "load_state_dict post hooks must change the keys in place and return None"
                )

    load(module, state, "")
    missing = [key for key in missing if "num_batches_tracked" not in key]
    if unexpected:
        errors.append(f"unexpected key in source state_dict: {', '.join(unexpected)}\n")
    if missing:
        errors.append(f"missing keys in source state_dict: {', '.join(missing)}\n")
    if not errors:
        return
    message = "\n".join(["The model and loaded state dict do not match exactly\n", *errors])
    if strict:  # on every process (MMEngine raises on rank 0 only, and the others go on)
        raise RuntimeError(message)
    if get_rank() == 0:
        print_log(message, logger=logger, level=logging.WARNING)


def _load_checkpoint(
    filename: str, map_location: Any = None, logger: Any = None, weights_only: bool = True
) -> Any:
    """The object stored at ``filename`` (a path or a URI that `CheckpointLoader` knows)."""
    extra = {} if weights_only else {"weights_only": False}  # registered loaders may not take it
    return CheckpointLoader.load_checkpoint(str(filename), map_location, logger, **extra)


def _state_dict_of(checkpoint: Any, filename: Any) -> dict:
    if not isinstance(checkpoint, dict):
        raise RuntimeError(
            f"No state_dict found in checkpoint file {filename}: it holds a "
            f"{type(checkpoint).__name__}; expected a state dict or a dict with 'state_dict'"
        )
    return checkpoint.get("state_dict", checkpoint)


def _load_checkpoint_with_prefix(prefix: str, filename: str, map_location: Any = None) -> dict:
    """The tensors of ``filename`` under ``prefix`` (e.g. ``'backbone'``), prefix removed.

    Raises:
        AssertionError: no key starts with ``prefix`` (MMEngine's exception).
    """
    state_dict = _state_dict_of(_load_checkpoint(filename, map_location), filename)
    prefix = prefix if prefix.endswith(".") else prefix + "."
    found = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    assert found, f"{prefix} is not in the pretrained model {filename}"
    return found


def load_checkpoint(
    model: nn.Module,
    filename: str | os.PathLike,
    map_location: Any = None,
    strict: bool = False,
    logger: Any = None,
    revise_keys: list[tuple[str, str]] = ((r"^module\.", ""),),  # type: ignore[assignment]
    weights_only: bool = True,
) -> dict:
    """Load a ``.pth`` file's weights into ``model`` (MMEngine's ``load_checkpoint``).

    Args:
        model: the model (wrappers are looked through).
        filename: a local path, ``http(s)://`` URL or a scheme `CheckpointLoader` knows.
        map_location: as ``torch.load``.
        strict: raise on any missing, unexpected or mis-shaped key (else log them).
        logger: where the mismatch report goes (see `engine.logging.print_log`).
        revise_keys: ``(pattern, replacement)`` regular expressions applied to every key in
            order; the default strips DDP's ``'module.'``.
        weights_only: False only for a file you trust (its pickled objects run).

    Returns:
        The loaded checkpoint (the whole dict, with ``'state_dict'`` when it had one).
    """
    checkpoint = _load_checkpoint(filename, map_location, logger, weights_only)
    state_dict = _state_dict_of(checkpoint, filename)
    metadata = getattr(state_dict, "_metadata", OrderedDict())
    for pattern, replacement in revise_keys:
        state_dict = OrderedDict(
            (re.sub(pattern, replacement, k), v) for k, v in state_dict.items()
        )
    state_dict._metadata = metadata  # type: ignore[attr-defined]
    load_state_dict(model, state_dict, strict, logger)
    return checkpoint


def weights_to_cpu(state_dict: dict) -> OrderedDict:
    """A copy of ``state_dict`` with every tensor (at any depth) on the CPU, metadata kept."""

    def to_cpu(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.cpu()
        if isinstance(value, dict):
            return type(value)((k, to_cpu(v)) for k, v in value.items())
        if isinstance(value, list | tuple):
            return type(value)(to_cpu(v) for v in value)
        return value

    out = OrderedDict((k, to_cpu(v)) for k, v in state_dict.items())
    out._metadata = getattr(state_dict, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    return out


def get_state_dict(
    module: nn.Module,
    destination: OrderedDict | None = None,
    prefix: str = "",
    keep_vars: bool = False,
) -> OrderedDict:
    """``module.state_dict()`` under the plain model's names: wrappers at any depth
    (``nn.Module(DataParallel(...))``) add no ``'module.'``. Keeps version metadata and runs
    the modules' state-dict hooks, as ``nn.Module.state_dict`` does."""
    module = _unwrap(module)
    if destination is None:
        destination = OrderedDict()
        destination._metadata = OrderedDict()  # type: ignore[attr-defined]
    local_metadata = {"version": module._version}
    destination._metadata[prefix[:-1]] = local_metadata  # type: ignore[attr-defined]
    module._save_to_state_dict(destination, prefix, keep_vars)
    for name, child in module._modules.items():
        if child is not None:
            get_state_dict(child, destination, f"{prefix}{name}.", keep_vars=keep_vars)
    for hook in module._state_dict_hooks.values():
        result = hook(module, destination, prefix, local_metadata)
        if result is not None:
            destination = result
    return destination


def save_checkpoint(
    checkpoint: dict,
    filename: str | os.PathLike,
    file_client_args: dict | None = None,
    backend_args: dict | None = None,
) -> None:
    """``torch.save(checkpoint)`` to ``filename``: a local path (written to a temporary file
    and renamed, so a crash never leaves half a file) or an ``s3://`` URI (`PetrelBackend`).

    Args:
        checkpoint: what to save, usually ``{'state_dict': ..., 'meta': ...}``.
        filename: where.
        file_client_args: MMEngine's older name for ``backend_args``.
        backend_args: e.g. ``dict(backend='local')``; chooses the file backend.
    """
    if file_client_args is not None and backend_args is not None:
        raise ValueError("pass backend_args or file_client_args (its older name), not both")
    args = backend_args if backend_args is not None else file_client_args
    backend = get_file_backend(str(filename), args)
    if getattr(backend, "name", "") == "LocalBackend":
        path = os.path.expanduser(os.fspath(filename))
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        partial = f"{path}.partial-{os.getpid()}"
        try:
            torch.save(checkpoint, partial)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        return
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    backend.put(buffer.getvalue(), str(filename))

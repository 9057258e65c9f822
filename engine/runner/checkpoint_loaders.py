"""MMEngine's `CheckpointLoader`: which function reads a ``.pth`` path, chosen by its scheme.

Local files are read weights-only (`engine.checkpoint.pth_files`: tensors, containers, NumPy
values and MMEngine's own objects as inert records), anything else refused unless the
caller says the file is trusted (``weights_only=False``); ``http(s)://`` URLs go through
``torch.hub`` (weights-only). ``s3://`` goes through `PetrelBackend` (needs
``petrel_client``). OpenMMLab's model-zoo names (``open-mmlab://``, ``mmcls://``,
``torchvision://``, ``pavi://``) need MMEngine's URL lists or clients, which engine does not
ship: their loaders raise one line saying so. Ported code registers its own schemes with
``@CheckpointLoader.register_scheme(prefixes='ftp://')``.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from typing import Any

import torch

from engine.checkpoint.pth_files import load_pth
from engine.fileio.file_client import PetrelBackend
from engine.logging.mm_logger import print_log

__all__ = ["CheckpointLoader", "load_from_http", "load_from_local"]


class CheckpointLoader:
    """Loaders by path prefix (a regular expression matched at the start); the longest
    prefix that matches wins, and ``''`` (local files) matches everything."""

    _schemes: dict[str, Callable[..., Any]] = {}

    @classmethod
    def _register_scheme(cls, prefixes: Any, loader: Callable, force: bool = False) -> None:
        if isinstance(prefixes, str):
            prefixes = [prefixes]
        if not isinstance(prefixes, list | tuple):
            raise TypeError(f"prefixes must be a str, list or tuple, got {prefixes!r}")
        for prefix in prefixes:
            if prefix in cls._schemes and not force:
                raise KeyError(
                    f"{prefix!r} already has a checkpoint loader "
                    f"({cls._schemes[prefix].__name__}); pass force=True to replace it"
                )
            cls._schemes[prefix] = loader
        # Reverse order: a longer prefix is tried before a prefix of it ('a/b/c' before 'a/b').
        cls._schemes = dict(sorted(cls._schemes.items(), reverse=True))

    @classmethod
    def register_scheme(
        cls, prefixes: Any, loader: Callable | None = None, force: bool = False
    ) -> Any:
        """Register ``loader(filename, map_location)`` for paths starting with ``prefixes``;
        without ``loader``, a decorator."""
        if loader is not None:
            cls._register_scheme(prefixes, loader, force=force)
            return None

        def register(function: Callable) -> Callable:
            cls._register_scheme(prefixes, function, force=force)
            return function

        return register

    @classmethod
    def _get_checkpoint_loader(cls, path: str) -> Callable[..., Any]:
        for prefix, loader in cls._schemes.items():
            if re.match(prefix, path) is not None:
                return loader
        return load_from_local

    @classmethod
    def load_checkpoint(
        cls, filename: str, map_location: Any = None, logger: Any = "current", **kwargs: Any
    ) -> Any:
        """Read ``filename`` with the loader of its scheme; ``kwargs`` (``weights_only``) go
        to that loader."""
        loader = cls._get_checkpoint_loader(str(filename))
        print_log(
            f"Loads checkpoint by {loader.__name__[10:]} backend from path: {filename}", logger
        )
        return loader(str(filename), map_location, **kwargs)


@CheckpointLoader.register_scheme(prefixes="")
def load_from_local(filename: str, map_location: Any, weights_only: bool = True) -> Any:
    """A ``.pth``/``.pt`` file on disk (``~`` expanded)."""
    path = os.path.expanduser(filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {filename} does not exist or is not a file")
    return load_pth(path, map_location, filename, weights_only)


@CheckpointLoader.register_scheme(prefixes=("http://", "https://"))
def load_from_http(
    filename: str, map_location: Any = None, model_dir: str | None = None, weights_only: bool = True
) -> Any:
    """A URL, downloaded once into torch's hub cache (``model_dir``) by the caller's request."""
    return torch.hub.load_state_dict_from_url(
        filename, model_dir=model_dir, map_location=map_location, weights_only=weights_only
    )


@CheckpointLoader.register_scheme(prefixes=(r"(\S+\:)?s3://", r"(\S+\:)?petrel://"))
def load_from_ceph(
    filename: str, map_location: Any = None, backend: str = "petrel", weights_only: bool = True
) -> Any:
    """An ``s3://`` object read through `PetrelBackend` (``petrel_client`` must be installed)."""
    if backend != "petrel":
        raise ValueError(f"load_from_ceph backend {backend!r} is not provided; accepted: 'petrel'")
    data = PetrelBackend().get(filename)
    return load_pth(io.BytesIO(data), map_location, filename, weights_only)


def _not_provided(what: str) -> Callable[..., Any]:
    def load(filename: str, map_location: Any = None, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"{filename}: {what} is not provided by engine (it needs MMEngine's model-zoo "
            "lists or clients); download the file and give its local path or URL"
        )

    return load


load_from_torchvision = _not_provided("torchvision's model names")
load_from_torchvision.__name__ = "load_from_torchvision"
load_from_openmmlab = _not_provided("OpenMMLab's model-zoo names")
load_from_openmmlab.__name__ = "load_from_openmmlab"
load_from_mmcls = _not_provided("MMClassification's model-zoo names")
load_from_mmcls.__name__ = "load_from_mmcls"
load_from_pavi = _not_provided("OpenMMLab's pavi model cloud")
load_from_pavi.__name__ = "load_from_pavi"
CheckpointLoader.register_scheme(("modelzoo://", "torchvision://"), load_from_torchvision)
CheckpointLoader.register_scheme(("open-mmlab://", "openmmlab://"), load_from_openmmlab)
CheckpointLoader.register_scheme("mmcls://", load_from_mmcls)
CheckpointLoader.register_scheme("pavi://", load_from_pavi)

"""MMEngine's ``mmengine.fileio.file_client`` import path: the file client, its backends, and
`get_file_backend`, which picks the backend for a path."""

from __future__ import annotations

from typing import Any

from engine.fileio.local_files import FileClient, LocalBackend
from engine.fileio.petrel_backend import PetrelBackend, is_petrel_uri

__all__ = ["FileClient", "LocalBackend", "PetrelBackend", "get_file_backend"]

_BACKENDS = {"disk": LocalBackend, "local": LocalBackend, "petrel": PetrelBackend}


def get_file_backend(uri: Any = None, backend_args: dict | None = None) -> Any:
    """The backend for ``uri``: ``backend_args['backend']`` when given (``'local'``/``'disk'``
    or ``'petrel'``, the other keys passed to it), else `PetrelBackend` for ``s3://`` paths and
    `LocalBackend` for the rest.

    Raises:
        ValueError: an unknown ``backend`` name.
    """
    args = dict(backend_args or {})
    name = args.pop("backend", None)
    if name is None:
        name = "petrel" if is_petrel_uri(uri) else "local"
    if name not in _BACKENDS:
        raise ValueError(
            f"file backend {name!r} is not provided; accepted: {', '.join(sorted(_BACKENDS))}"
        )
    return _BACKENDS[name](**args)

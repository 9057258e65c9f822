"""MMEngine's ``PetrelBackend``: ``s3://`` files through SenseTime's ``petrel_client``.

engine reads and writes local files itself (`engine.fileio.local_files`); this backend only
forwards ``get``/``put`` to a ``petrel_client.client.Client`` and is usable only where that
client library is installed and configured. Without it, constructing the backend raises a
one-line `ImportError` (as MMEngine's does).
"""

from __future__ import annotations

import re
from typing import Any

# 's3://b/k', 'cluster:s3://b/k': the URIs this backend is chosen for.
_PETREL_URI = re.compile(r"^\s*([\w-]+:)?s3://")


def is_petrel_uri(path: Any) -> bool:
    """True for ``s3://...`` and ``<cluster>:s3://...`` paths."""
    return isinstance(path, str) and _PETREL_URI.match(path) is not None


class PetrelBackend:
    """Read and write ``s3://`` objects with ``petrel_client``.

    Args:
        path_mapping: ``{old_prefix: new_prefix}`` applied to every path first (MMEngine's).
        enable_mc: use memcached, passed to ``petrel_client.client.Client``.
        conf_path: the client's configuration file; None uses its default.

    Raises:
        ImportError: ``petrel_client`` is not installed.
    """

    name = "PetrelBackend"

    def __init__(
        self,
        path_mapping: dict | None = None,
        enable_mc: bool = True,
        conf_path: str | None = None,
    ) -> None:
        try:  # optional: only where SenseTime's client is installed
            from petrel_client import client
        except ImportError:
            raise ImportError(
                "PetrelBackend needs petrel_client (SenseTime's s3 client), which is not "
                "installed; engine reads and writes local paths without it"
            ) from None
        if path_mapping is not None and not isinstance(path_mapping, dict):
            raise TypeError(f"path_mapping must be a dict or None, got {path_mapping!r}")
        self.path_mapping = path_mapping or {}
        self._client = client.Client(conf_path=conf_path, enable_mc=enable_mc)

    def _map(self, filepath: Any) -> str:
        path = str(filepath)
        for old, new in self.path_mapping.items():
            path = path.replace(old, new, 1)
        return path

    def get(self, filepath: Any) -> bytes:
        """The object's bytes."""
        return bytes(self._client.Get(self._map(filepath)))

    def get_text(self, filepath: Any, encoding: str = "utf-8") -> str:
        return self.get(filepath).decode(encoding)

    def put(self, obj: bytes, filepath: Any) -> None:
        """Write ``obj`` (bytes) to ``filepath``."""
        self._client.put(self._map(filepath), obj)

    def put_text(self, obj: str, filepath: Any, encoding: str = "utf-8") -> None:
        self.put(obj.encode(encoding), filepath)

"""Local-disk `load`/`dump` by suffix, and MMEngine's `LocalBackend`/`FileClient` names."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any


def load(file: str | os.PathLike, file_format: str | None = None, **kwargs: Any) -> Any:
    """Read a ``.json`` (one object, or JSON lines as a list), ``.pkl``/``.pickle`` file.

    Pickles can run code when loaded: only load files you wrote.
    """
    path = Path(file)
    kind = (file_format or path.suffix.lstrip(".")).lower()
    if kind in ("json", "jsonl"):
        text = path.read_text()
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
    if kind in ("pkl", "pickle"):
        with open(path, "rb") as f:
            return pickle.load(f)  # noqa: S301 - the caller's own file, as MMEngine's load
    raise ValueError(f"load: unsupported format {kind!r} of {file}; accepted: json, jsonl, pkl")


def dump(obj: Any, file: str | os.PathLike, file_format: str | None = None, **kw: Any) -> None:
    """Write `obj` as JSON or a pickle, by suffix (or `file_format`)."""
    path = Path(file)
    kind = (file_format or path.suffix.lstrip(".")).lower()
    if kind == "json":
        path.write_text(json.dumps(obj, **kw))
    elif kind in ("pkl", "pickle"):
        path.write_bytes(pickle.dumps(obj))
    else:
        raise ValueError(f"dump: unsupported format {kind!r} of {file}; accepted: json, pkl")


class LocalBackend:
    """Files on the local disk, with MMEngine's backend method names."""

    name = "LocalBackend"

    def get(self, filepath: str | os.PathLike) -> bytes:
        return Path(filepath).read_bytes()

    def get_text(self, filepath: str | os.PathLike, encoding: str = "utf-8") -> str:
        return Path(filepath).read_text(encoding=encoding)

    def put(self, obj: bytes, filepath: str | os.PathLike) -> None:
        Path(filepath).parent.mkdir(parents=True, exist_ok=True)
        Path(filepath).write_bytes(obj)

    def put_text(self, obj: str, filepath: str | os.PathLike, encoding: str = "utf-8") -> None:
        Path(filepath).parent.mkdir(parents=True, exist_ok=True)
        Path(filepath).write_text(obj, encoding=encoding)

    def exists(self, filepath: str | os.PathLike) -> bool:
        return Path(filepath).exists()

    def isdir(self, filepath: str | os.PathLike) -> bool:
        return Path(filepath).is_dir()

    def isfile(self, filepath: str | os.PathLike) -> bool:
        return Path(filepath).is_file()

    def join_path(self, filepath: str | os.PathLike, *parts: str) -> str:
        return os.path.join(filepath, *parts)

    def remove(self, filepath: str | os.PathLike) -> None:
        Path(filepath).unlink()

    def rmtree(self, dir_path: str | os.PathLike) -> None:
        shutil.rmtree(dir_path)

    def copyfile(self, src: str | os.PathLike, dst: str | os.PathLike) -> str:
        return shutil.copy(src, dst)

    def list_dir_or_file(self, dir_path: str | os.PathLike, **kwargs: Any) -> Any:
        return (p.name for p in Path(dir_path).iterdir())


class FileClient:
    """MMEngine's ``FileClient(backend='disk')``: a `LocalBackend` under another name."""

    def __init__(self, backend: str | None = None, prefix: str | None = None, **kw: Any):
        if backend not in (None, "disk", "local") or prefix not in (None, "disk"):
            raise ValueError(
                f"FileClient backend {backend or prefix!r} is not provided; engine reads local "
                "files only (backend='disk')"
            )
        self.client = LocalBackend()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    @classmethod
    def infer_client(cls, file_client_args: dict | None = None, uri: Any = None) -> FileClient:
        return cls(**(file_client_args or {}))

"""A checkpoint's manifest: each file's size and hash, written last; verified before loading.

``manifest.json`` is the last file written into a checkpoint folder before the folder is
published (`engine.checkpoint.save`), so a folder whose manifest lists every file and whose
files match it is one that was written whole and not changed since. Resume, ``load_from``
and export call `verify` first: a flipped byte, a truncated or zeroed file, or a file copied
in from another checkpoint is a `CheckpointError` naming that file.

The hash: XXH3-128 (``xxhash``, which ``datasets`` depends on), else SHA-256. The manifest
guards against accidents (bit rot, truncation, files mixed up between checkpoints), not
against someone who can also rewrite the manifest, so a cryptographic hash buys nothing
here; what matters is 128 bits (no accidental match) and speed. XXH3 hashes about 5 GB/s
on one loaded core, faster than disks read; SHA-256 about 0.5-2 GB/s, which on a busy
machine made verification several times slower than ``cat`` (bench/checkpoint_verify.py,
bench/RESULTS.md). The algorithm is recorded, so either kind of manifest verifies.
Files are hashed in threads (both release the GIL on large buffers), 16 MiB reads each.

Checkpoints written before manifests existed load with one warning saying they are not
verified.

Example:
    >>> write_manifest(Path("work_dirs/demo/.tmp_iter_4"))
    >>> verify(Path("work_dirs/demo/iter_4"))       # raises CheckpointError naming a bad file
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.checkpoint.deepspeed_state import DEEPSPEED
from engine.checkpoint.io import MODEL, OPTIMIZER, STATE, TENSORS, CheckpointError, write_json
from engine.checkpoint.sharded import SHARDED

logger = logging.getLogger("engine")

MANIFEST = "manifest.json"
try:
    import xxhash
except ImportError:  # pragma: no cover - datasets, a dependency, requires xxhash
    xxhash = None

_FORMAT = "engine.manifest"
_ALGORITHM = "xxh3_128" if xxhash is not None else "sha256"
_HASHES = {"sha256": hashlib.sha256}
if xxhash is not None:
    _HASHES["xxh3_128"] = xxhash.xxh3_128
_CHUNK = 16 << 20
# Files that a checkpoint may hold: one of them present but not listed was put there later.
_KNOWN = re.compile(
    rf"^({re.escape(MODEL)}|{re.escape(OPTIMIZER)}|{re.escape(STATE)}|{re.escape(TENSORS)}"
    r"|rng_state_\d+\.json)$"
)


def file_digest(path: Path, algorithm: str = _ALGORITHM) -> str:
    """The hex digest of `path` by `algorithm`, read in 16 MiB blocks."""
    digest = _HASHES[algorithm]()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def describe(
    folder: Path, names: list[str] | None = None, algorithm: str = _ALGORITHM
) -> dict[str, dict[str, Any]]:
    """{file name: {"size", "hash"}} for `names` (default: every file) in `folder`."""
    folder = Path(folder)
    if names is None:
        names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
        # A sharded checkpoint's DCP files live in one sub-folder (engine.checkpoint.sharded),
        # DeepSpeed's in a tree of their own (engine.checkpoint.deepspeed_state).
        names += sorted(
            str(p.relative_to(folder)) for p in (folder / SHARDED).glob("*") if p.is_file()
        )
        names += sorted(
            str(p.relative_to(folder)) for p in (folder / DEEPSPEED).rglob("*") if p.is_file()
        )
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(names)))) as pool:
        digests = list(pool.map(lambda n: file_digest(folder / n, algorithm), names))
    return {
        name: {"size": (folder / name).stat().st_size, "hash": digest}
        for name, digest in zip(names, digests)
    }


def write_manifest(folder: Path) -> None:
    """Write ``folder/manifest.json`` describing every file in `folder` (call it last)."""
    files = describe(folder)
    write_json(folder / MANIFEST, {"format": _FORMAT, "algorithm": _ALGORITHM, "files": files})


def read_manifest(folder: Path) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """(algorithm, file table) of the manifest, None when the folder has none (an older
    checkpoint)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"{path} is corrupt ({type(err).__name__}); the checkpoint cannot be verified"
        ) from None
    files = data.get("files") if isinstance(data, dict) else None
    ok = (
        isinstance(files, dict)
        and data.get("format") == _FORMAT
        and all(
            isinstance(e, dict)
            and isinstance(e.get("size"), int)
            and isinstance(e.get("hash"), str)
            for e in files.values()
        )
    )
    if not ok:
        raise CheckpointError(
            f"{path} is not an engine manifest (format, algorithm, files with size and hash); "
            "the checkpoint cannot be verified"
        )
    if data.get("algorithm") not in _HASHES:
        raise CheckpointError(
            f"{path} uses hash {data.get('algorithm')!r}; this engine verifies {sorted(_HASHES)} "
            "(pip install xxhash for 'xxh3_128')"
        )
    return data["algorithm"], files


def verify(folder: Path, names: list[str] | None = None) -> None:
    """Check `folder`'s files against its manifest.

    Args:
        folder: a checkpoint folder.
        names: only these files (default: every file the manifest lists).

    Raises:
        CheckpointError: naming the first file that is missing, of another size or content,
            or present but not listed; or a manifest that cannot be read.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        logger.warning("%s has no %s (written by an older engine): not verified", folder, MANIFEST)
        return
    algorithm, files = manifest
    for path in sorted(folder.iterdir()):
        if _KNOWN.match(path.name) and path.name not in files:
            raise CheckpointError(
                f"{path} is not listed in {folder / MANIFEST}: it was added after the checkpoint "
                "was written; remove it or use another checkpoint"
            )
    wanted = [n for n in (names if names is not None else files) if n in files]
    for name in wanted:
        path = folder / name
        if not path.is_file():
            raise CheckpointError(
                f"{folder} is incomplete: {name} is missing ({MANIFEST} lists it)"
            )
        if path.stat().st_size != files[name]["size"]:
            raise CheckpointError(
                f"{path} has {path.stat().st_size} bytes, {files[name]['size']} when it was saved: "
                "it is truncated or was replaced"
            )
    actual = describe(folder, wanted, algorithm)
    for name in wanted:
        if actual[name]["hash"] != files[name]["hash"]:
            raise CheckpointError(
                f"{folder / name} differs from what was saved (its {algorithm} hash does not "
                f"match {MANIFEST}): it is corrupt or comes from another checkpoint"
            )


def is_intact(folder: Path) -> str | None:
    """None when `folder` verifies, else the one-line reason (for skipping it)."""
    try:
        verify(folder)
    except (CheckpointError, OSError) as err:
        return str(err)
    return None

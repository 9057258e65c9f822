"""The files of a checkpoint: durable writes, data-only reads, one-line errors.

Readers here load data, never code. Tensors come from safetensors, everything else from
JSON, and the optimizer's state from ``torch.load(weights_only=True)``, whose unpickler
accepts tensors and plain containers only: a file holding any other object is refused
before anything in it runs. Every failure is a `CheckpointError` (or
``FileNotFoundError``) whose one line names the file and what was expected.

Writers fsync each file, so that a rename that publishes a folder (see
`engine.checkpoint.save`) never exposes a file whose bytes are still in the page cache.

Example:
    >>> tensors = {}
    >>> payload = encode({"ema": torch.ones(2), "steps": (1, 2)}, tensors, "hook")
    >>> decode(payload, tensors)["steps"]
    (1, 2)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

# The files of a checkpoint folder (see `engine.checkpoint.save` for the layout).
MODEL = "model.safetensors"
OPTIMIZER = "optimizer.pt"
STATE = "engine_state.json"
TENSORS = "engine_tensors.safetensors"
LAST = "last_checkpoint"  # in work_dir: the name of the newest periodic checkpoint
FORMAT, VERSION = "engine.checkpoint", 1  # engine_state.json's "format" and "version"


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, tampered with, or does not fit the run."""


def _first_line(err: BaseException) -> str:
    """The first sentence of an error's message, for one-line reports."""
    text = str(err).strip().splitlines()
    return text[0].strip().split(". ")[0] if text else type(err).__name__


def require_file(path: Path, expected: str) -> Path:
    """`path` if it is a file, else a one-line ``FileNotFoundError`` saying what it should be."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected {expected}")
    return path


# -- durable writes ----------------------------------------------------------------------
def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: readers see the old or the new content."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, allow_nan=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def torch_save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


# -- reads -------------------------------------------------------------------------------
def read_json(path: Path, expected: str) -> Any:
    require_file(path, expected)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"{path} is not valid JSON ({_first_line(err)}); expected {expected}"
        ) from None


def torch_load_weights_only(path: Path, expected: str) -> Any:
    """``torch.load(weights_only=True)`` on CPU: a file holding anything other than
    tensors and plain containers is refused, and nothing in it runs."""
    require_file(path, expected)
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} was refused by weights-only loading ({_unpickler_reason(err)}): it holds "
            f"objects other than tensors and plain containers, or is corrupt; nothing in it "
            f"was run. Expected {expected}"
        ) from None
    except Exception as err:  # truncated zip, wrong magic number, ...
        raise CheckpointError(
            f"{path} is corrupt or truncated ({type(err).__name__}: {_first_line(err)}); expected {expected}"
        ) from None


def _unpickler_reason(err: BaseException) -> str:
    """The line of torch's long message that says what was refused (not its advice to
    load with weights_only=False, which would run the file's code)."""
    lines = [line.strip() for line in str(err).splitlines()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = [line.split("WeightsUnpickler error:", 1)[1].strip(), *lines[i + 1 :]]
            reason = next((text for text in rest if text), "unsupported content")
            return reason.split(". Please use")[0]
    return "unsupported content"


# -- tensors -----------------------------------------------------------------------------
_ALIASES = "engine.aliases"  # safetensors metadata key: {alias name: stored name}


def save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write `tensors` to a safetensors file; tied tensors (one storage, several names)
    are stored once and re-tied by `load_tensors`, since safetensors refuses aliasing."""
    from safetensors.torch import save_file

    seen: dict[tuple, str] = {}
    storages: set[tuple] = set()
    unique: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach()
        storage = (tensor.device, tensor.untyped_storage().data_ptr())
        view = (
            *storage,
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
            tensor.dtype,
        )
        if tensor.numel() and view in seen:
            aliases[name] = seen[view]
            continue
        seen[view] = name
        if tensor.numel() and storage in storages:
            tensor = tensor.clone()  # another view of a stored tensor: its own copy
        storages.add(storage)
        unique[name] = tensor.cpu().contiguous()
    meta = dict(metadata or {})
    if aliases:
        meta[_ALIASES] = json.dumps(aliases)
    save_file(unique, str(path), metadata=meta or None)
    fsync_file(path)


def load_tensors(path: Path, expected: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors with aliases re-tied, metadata) from a safetensors file on CPU."""
    from safetensors import safe_open

    require_file(path, expected)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        aliases = json.loads(metadata.pop(_ALIASES, "{}"))
        for alias, name in aliases.items():
            tensors[alias] = tensors[name]
    except Exception as err:  # SafetensorError: bad header, truncation; bad alias JSON
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({_first_line(err)}); expected {expected}"
        ) from None
    return tensors, metadata


# -- JSON values with tensors ------------------------------------------------------------
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"


def encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """`value` as JSON, its tensors moved into `tensors` (to be saved with `save_tensors`).

    Accepts what hook states hold: str, int, float, bool, None, lists, tuples, dicts (any
    such keys) and tensors. Anything else is a ``TypeError`` naming its place `where`.
    """
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().clone()
        return {_TENSOR: key}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalars
        return value.item()
    if isinstance(value, list):
        return [encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {_TUPLE: [encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not {_TENSOR, _TUPLE, _ITEMS} & set(value):
            return {k: encode(v, tensors, f"{where}.{k}") for k, v in value.items()}
        return {
            _ITEMS: [
                [encode(k, tensors, where), encode(v, tensors, f"{where}[{k!r}]")]
                for k, v in value.items()
            ]
        }
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoint state may hold str, int, float, bool, "
        "None, list, tuple, dict and tensors"
    )


def decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `encode`."""
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if _TENSOR in value:
            return tensors[value[_TENSOR]]
        if _TUPLE in value:
            return tuple(decode(v, tensors) for v in value[_TUPLE])
        if _ITEMS in value:
            return {_hashable(decode(k, tensors)): decode(v, tensors) for k, v in value[_ITEMS]}
        return {k: decode(v, tensors) for k, v in value.items()}
    return value


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key

"""`CheckpointHook`'s argument checks: MMEngine's rules, engine's one-line messages.

MMEngine checks several arguments with ``assert``; the errors here are also
`AssertionError`s so ported code (and MMEngine's tests) that expect one still catch them.
"""

from __future__ import annotations

from typing import Any

from engine.fileio import FileClient, LocalBackend

RULES = ("greater", "less")


class CheckpointHookValueError(ValueError, AssertionError):
    """A `CheckpointHook` argument with a wrong value."""


class CheckpointHookTypeError(TypeError, ValueError, AssertionError):
    """A `CheckpointHook` argument of a wrong type."""


def check_int(name: str, value: Any, low: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low}"
        raise ValueError(f"CheckpointHook {name} must be an int{bound}, got {value!r}")


def metrics_and_rules(save_best: Any, rule: Any) -> tuple[list[str], list[str | None]]:
    """`save_best` and `rule` as two aligned lists, checked."""
    keys = [] if save_best is None else [save_best] if isinstance(save_best, str) else save_best
    if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
        raise CheckpointHookTypeError(
            "CheckpointHook \"save_best\" should be a metric name, a list of them, 'auto' or "
            f"None, got {save_best!r}"
        )
    if len(set(keys)) != len(keys) or ("auto" in keys and len(keys) > 1):
        raise CheckpointHookValueError(
            f"CheckpointHook save_best={save_best!r} repeats a name or mixes 'auto' with "
            "names. Only support one entry when it is 'auto': pass 'auto' alone or distinct names"
        )
    rules = list(rule) if isinstance(rule, list | tuple) else [rule]
    if not all(r is None or isinstance(r, str) for r in rules):
        raise CheckpointHookTypeError(
            f'CheckpointHook "rule" should be a str, a list of str or None, got {rule!r}'
        )
    rules = rules * len(keys) if len(rules) == 1 else rules
    if len(rules) != len(keys):
        raise CheckpointHookValueError(
            f'CheckpointHook: Number of "rule" must be 1 or that of "save_best" ({len(keys)}), '
            f"got rule={rule!r}"
        )
    if any(r not in (None, *RULES) for r in rules):
        raise CheckpointHookValueError(
            "CheckpointHook rule must be 'greater', 'less' or None (one, or one per save_best "
            f"metric), got {rule!r}"
        )
    return list(keys), rules


def file_access(file_client_args: Any, backend_args: Any) -> tuple[FileClient, Any]:
    """MMEngine's ``(file_client, file_backend)``: local disk only, so a remote backend is a
    clear error now rather than a checkpoint that never arrives."""
    if file_client_args is not None and backend_args is not None:
        raise CheckpointHookValueError(
            'CheckpointHook "file_client_args" and "backend_args" cannot be set at the same '
            "time; pass backend_args only"
        )
    backend = (backend_args or {}).get("backend")
    if backend not in (None, "local", "disk"):
        raise CheckpointHookValueError(
            f"CheckpointHook backend_args backend={backend!r} is not provided; engine writes "
            "checkpoints to local disk only (backend='local')"
        )
    client = FileClient.infer_client(file_client_args)
    return client, (LocalBackend() if file_client_args is None else client)

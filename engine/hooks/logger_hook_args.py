"""`LoggerHook`'s argument checks: MMEngine's rules and exception types, engine's one-line messages.

A wrong type raises `LoggerHookArgumentError`, both a TypeError (MMEngine's) and a ValueError
(what engine raised before), so code catching either keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.logging.mm_logger import current_logger


class LoggerHookArgumentError(TypeError, ValueError):
    """A `LoggerHook` argument of the wrong type."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_logger_hook_args(
    interval: Any,
    ignore_last: Any,
    interval_exp_name: Any,
    out_dir: Any,
    out_suffix: Any,
    keep_local: Any,
    file_client_args: Any,
    backend_args: Any,
) -> None:
    """Raise on the first bad argument, naming it and what is accepted; warn once that
    ``file_client_args`` is MMEngine's deprecated spelling of ``backend_args``."""
    if not _is_int(interval):
        raise LoggerHookArgumentError(f"LoggerHook interval must be an int >= 1, got {interval!r}")
    if interval < 1:
        raise ValueError(f"LoggerHook interval must be an int >= 1, got {interval!r}")
    if not isinstance(ignore_last, bool):
        raise TypeError(f"LoggerHook ignore_last must be a bool, got {ignore_last!r}")
    if not _is_int(interval_exp_name):
        raise TypeError(f"LoggerHook interval_exp_name must be an int, got {interval_exp_name!r}")
    if interval_exp_name < 1:
        raise ValueError(f"LoggerHook interval_exp_name must be >= 1, got {interval_exp_name}")
    if out_dir is not None and not isinstance(out_dir, str | Path):
        raise TypeError(f"LoggerHook out_dir must be a str or Path, got {out_dir!r}")
    if not isinstance(keep_local, bool):
        raise TypeError(f"LoggerHook keep_local must be a bool, got {keep_local!r}")
    if not isinstance(out_suffix, str) and not (
        isinstance(out_suffix, Sequence) and all(isinstance(s, str) for s in out_suffix)
    ):
        raise TypeError(
            f"LoggerHook out_suffix must be a str or a sequence of str, got {out_suffix!r}"
        )
    if file_client_args is None:
        return
    if out_dir is None:
        raise ValueError(
            "LoggerHook file_client_args only says how to write out_dir; pass out_dir too "
            f"(got file_client_args={file_client_args!r} without out_dir)"
        )
    if backend_args is not None:
        raise ValueError(
            'LoggerHook "file_client_args" and "backend_args" cannot be set at the same time; '
            "pass backend_args only"
        )
    current_logger().warning(
        'LoggerHook: "file_client_args" is MMEngine\'s deprecated name; use "backend_args" '
        "(engine copies logs to a local out_dir either way)"
    )

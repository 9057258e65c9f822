"""The run folder: each run's log, scalars, config and pictures in ``work_dir/<timestamp>/``.

Checkpoints stay in ``work_dir`` itself, where ``resume=True`` finds them; everything a run
writes about itself goes into a new folder named after its start time (MMEngine's
convention), so two runs in one work_dir never append to each other's files::

    work_dirs/digits/
        epoch_1/ ... epoch_5/  last_checkpoint     checkpoints, shared by resumed runs
        20261128_201502/                           one run
            run.log  scalars.jsonl  config.json  curves.png
        20261128_203011/                           the next (e.g. resumed) run

Example:
    >>> new_run_folder(Path("work_dirs/demo"), create=True)
    PosixPath('work_dirs/demo/20261128_201502')
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOG, SCALARS, CONFIG, CURVES = "run.log", "scalars.jsonl", "config.json", "curves.png"


def new_run_folder(work_dir: Path, create: bool) -> Path:
    """A fresh ``work_dir/<YYYYmmdd_HHMMSS>`` folder (``_2``, ``_3``... if that one exists).

    Args:
        work_dir: the run's work_dir.
        create: make the folder (the main process does; the others only name it).

    Returns:
        The run folder's path.
    """
    stamp = time.strftime("%Y%m%d_%H%M%S")
    folder, n = work_dir / stamp, 1
    while create and folder.exists():
        n += 1
        folder = work_dir / f"{stamp}_{n}"
    if create:
        folder.mkdir(parents=True)
    return folder


def config_dict(cfg: Any) -> dict[str, Any] | None:
    """A run's config (a dataclass, a mapping or None) as a JSON-ready dict."""
    if cfg is None:
        return None
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        cfg = dataclasses.asdict(cfg)
    elif callable(getattr(cfg, "to_dict", None)):  # MMEngine's Config
        cfg = cfg.to_dict()
    elif isinstance(cfg, Mapping):
        cfg = dict(cfg)
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg must be a dataclass instance or a dict, got {type(cfg).__name__}")
    return json.loads(json.dumps(cfg, default=str))


def write_config(folder: Path, cfg: dict[str, Any]) -> Path:
    """Write `cfg` to ``folder/config.json``; ``--config`` of the recipes reads it back."""
    path = folder / CONFIG
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return path


def discard_unused_run_folder(runner: Any) -> None:
    """Remove the run folder of a run that failed before it recorded anything but its log
    and config (a mistake refused at start-up, or at the first step): such a run leaves
    ``work_dir`` as it found it. A run that logged scalars or drew pictures keeps its folder."""
    folder = getattr(runner, "log_dir", None)
    accelerator = getattr(runner, "accelerator", None)
    if folder is None or not Path(folder).is_dir():
        return
    if accelerator is not None and not accelerator.is_main_process:
        return
    if {p.name for p in Path(folder).iterdir()} - {LOG, CONFIG}:
        return
    engine_logger = logging.getLogger("engine")  # run.log must be closed before it goes
    for handler in list(engine_logger.handlers):
        if (
            isinstance(handler, logging.FileHandler)
            and Path(handler.baseFilename).parent == Path(folder).resolve()
        ):
            engine_logger.removeHandler(handler)
            handler.close()
    shutil.rmtree(folder, ignore_errors=True)


def discarding_unused_run_folder(method):
    """Decorate a `Runner` entry point: a failure removes an unused run folder, then raises."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            discard_unused_run_folder(self)
            raise

    return wrapper

"""`LogWriter`: where `LoggerHook`'s lines and records go: the log, ``scalars.jsonl``, trackers."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from engine.checkpoint.disk_errors import write_failure

logger = logging.getLogger("engine")


class LogWriter:
    """Writes a line to the log (above an open progress bar), a record to ``scalars.jsonl``
    in the run folder, and its numbers to Accelerate's trackers.

    Args:
        out_suffix: `LoggerHook`'s; ``scalars.jsonl`` is written when it names ``'.jsonl'``
            or ``'.json'``.
        bars: the hook's `ProgressBars`; lines go above an open training bar.
    """

    def __init__(self, out_suffix: tuple[str, ...], bars: Any) -> None:
        self.out_suffix, self.bars = out_suffix, bars
        self.write_failed = False  # scalars.jsonl could not be written (warned once)

    def emit(self, runner: Any, line: str, record: dict, step: int) -> None:
        """Engine's own output: `line` to the ``'engine'`` log, `record` to ``scalars.jsonl``
        and, prefixed by its mode (``train/loss``), to the trackers at `step`."""
        self.say(runner, line, logger)
        self.write_jsonl(runner, record)
        accelerator = getattr(runner, "accelerator", None)
        if accelerator is not None and accelerator.trackers:
            mode = record["mode"]
            values = {
                f"{mode}/{k}": v
                for k, v in record.items()
                if k not in ("mode", "iter", "step") and isinstance(v, (int, float))
            }
            accelerator.log(values, step=step)

    def say(self, runner: Any, line: str, to: Any = None) -> None:
        """Log `line` (to ``runner.logger`` unless `to` is given), above an open bar."""
        to = to if to is not None else (getattr(runner, "logger", None) or logger)
        if self.bars.train is not None:
            from tqdm.contrib.logging import logging_redirect_tqdm

            with logging_redirect_tqdm(loggers=[logger]):  # lines go above the bar, via tqdm.write
                to.info(line)
        else:
            to.info(line)

    def write_jsonl(self, runner: Any, record: dict) -> None:
        """Append `record` to ``scalars.jsonl`` in the run folder (or work_dir)."""
        folder = getattr(runner, "log_dir", None) or getattr(runner, "work_dir", None)
        if not isinstance(folder, str | os.PathLike):
            return
        if not {".jsonl", ".json"} & set(self.out_suffix):
            return
        path = Path(folder) / "scalars.jsonl"
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:  # closing flushes each record
                f.write(json.dumps(record, default=str) + "\n")
        except OSError as err:
            # A full disk must not kill a run that could still checkpoint: say it once.
            if not self.write_failed:
                self.write_failed = True
                logger.warning(
                    "%s; training goes on without it", write_failure("logging", path, err)
                )

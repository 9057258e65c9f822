"""The ``'engine'`` logger of a run: console on the main process, ``run.log`` in work_dir.

`Runner` calls `setup_logging` once, right after it has an Accelerator; what gets logged
and when is `engine.hooks.logger_hook`'s business.

Example:
    >>> setup_logging(accelerator, Path('work_dirs/demo'))  # then work_dirs/demo/run.log
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from engine.checkpoint.disk_errors import write_failure

logger = logging.getLogger("engine")


class _RunLogHandler(logging.FileHandler):
    """``run.log``: once closed (``logging.shutdown()``, a test's tearDown), it stays closed
    instead of reopening a file whose folder may be gone."""

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None and getattr(self, "_closed", False):
            return
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        # A failed write (a full disk): said once on the console, then the file is dropped,
        # instead of logging's traceback on every record; training goes on.
        err = sys.exc_info()[1]
        if not isinstance(err, OSError):
            return super().handleError(record)
        logger.removeHandler(self)
        logger.warning(
            "%s; training goes on without it",
            write_failure("logging", Path(self.baseFilename), err),
        )


def setup_logging(accelerator: Any, work_dir: Path | None) -> None:
    """Console on the main process only (others warn and worse); a log file in work_dir."""
    logger.setLevel(logging.INFO if accelerator.is_main_process else logging.WARNING)
    if not any(getattr(h, "_engine", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%m/%d %H:%M:%S"))
        handler._engine = True
        logger.addHandler(handler)
        logger.propagate = False
    if work_dir is not None and accelerator.is_main_process:
        work_dir.mkdir(parents=True, exist_ok=True)
        path = str(work_dir / "run.log")
        for h in list(logger.handlers):
            if (
                isinstance(h, logging.FileHandler)
                and getattr(h, "_engine", False)
                and (h.baseFilename != os.path.abspath(path) or getattr(h, "_closed", False))
            ):
                logger.removeHandler(h)
                h.close()
        if not any(
            isinstance(h, logging.FileHandler) and h.baseFilename == os.path.abspath(path)
            for h in logger.handlers
        ):
            file_handler = _RunLogHandler(path)
            file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            file_handler._engine = True
            logger.addHandler(file_handler)

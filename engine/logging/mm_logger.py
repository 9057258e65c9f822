"""`MMLogger`: MMEngine's named loggers, feeding engine's ``'engine'`` log (console, run.log).

A ported hook writes ``runner.logger.info(...)`` or ``MMLogger.get_current_instance()``;
both reach the handlers `engine.runner.log_setup` installed for the run, so one run has one
console stream and one log file whichever logger a line came from.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import torch.distributed as dist

from engine.utils.manager import ManagerMixin


class MMLogger(logging.Logger, ManagerMixin):
    """A logger whose records go to the ``logger_name`` logger's handlers (engine's).

    Args:
        name: the instance name (`get_instance`).
        logger_name: the logger whose handlers print the records; ``'mmengine'`` (MMEngine's
            default) means engine's.
        log_file: also write this file (mode `file_mode`), on the main process.
        log_level: ``'INFO'``, ``'DEBUG'``... or an int.
        distributed, file_handler_cfg: accepted for MMEngine's signature; every process
            logs to the same file handlers as engine's log, so they change nothing here.

    Example:
        >>> MMLogger.get_instance('demo', log_file='work_dirs/demo/demo.log').info('hello')
    """

    def __init__(
        self,
        name: str,
        logger_name: str = "engine",
        log_file: str | None = None,
        log_level: int | str = "INFO",
        file_mode: str = "w",
        distributed: bool = False,
        file_handler_cfg: dict | None = None,
    ) -> None:
        level = logging.getLevelName(log_level) if isinstance(log_level, str) else log_level
        if not isinstance(level, int):
            raise ValueError(f"MMLogger log_level {log_level!r} is not a logging level name")
        logging.Logger.__init__(self, name if logger_name == "mmengine" else logger_name, level)
        ManagerMixin.__init__(self, name)
        target = logging.getLogger("engine" if logger_name == "mmengine" else logger_name)
        self.parent, self.propagate = target, True
        if not target.handlers and not _rank():  # no Runner set the log up: print here
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(message)s"))
            self.addHandler(handler)
        self._log_file = log_file
        if log_file is not None and not _rank():
            handler = logging.FileHandler(log_file, file_mode)
            handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
            self.addHandler(handler)

    @property
    def log_file(self) -> str | None:
        return self._log_file

    @classmethod
    def get_current_instance(cls) -> MMLogger:
        """The latest logger; one named ``'engine'`` is created when there is none."""
        if not cls._instance_dict:
            cls.get_instance("engine")
        return super().get_current_instance()


def current_logger() -> logging.Logger:
    """Where engine's own warnings go: the latest `MMLogger` when ported code made one
    (MMEngine's tests and hooks watch ``MMLogger.get_current_instance()``), else engine's
    ``'engine'`` logger. An MMLogger propagates to ``'engine'``, so the run's log gets both."""
    if MMLogger._instance_dict:
        return MMLogger.get_current_instance()
    return logging.getLogger("engine")


def print_log(msg: Any, logger: Any = None, level: int = logging.INFO) -> None:
    """MMEngine's ``print_log``: to `logger` (a Logger, an MMLogger name, ``'current'``,
    ``'silent'``) or, when None, to ``print``."""
    if logger is None:
        print(msg)
    elif logger == "silent":
        return
    elif isinstance(logger, logging.Logger):
        logger.log(level, msg)
    elif logger == "current":
        MMLogger.get_current_instance().log(level, msg)
    elif isinstance(logger, str):
        MMLogger.get_instance(logger).log(level, msg)
    else:
        raise TypeError(
            f"print_log logger must be None, a Logger, 'silent', 'current' or a name, got {logger!r}"
        )


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

"""MMEngine's ``mmengine.logging.logger`` import path: `MMLogger` and `print_log`."""

from engine.logging.mm_logger import MMLogger, print_log

__all__ = ["MMLogger", "print_log"]

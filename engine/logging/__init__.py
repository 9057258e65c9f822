"""MMEngine's ``mmengine.logging`` names: `MMLogger`, `MessageHub`, `HistoryBuffer`, `print_log`."""

from engine.logging.history_buffer import HistoryBuffer
from engine.logging.message_hub import MessageHub
from engine.logging.mm_logger import MMLogger, current_logger, print_log

__all__ = ["HistoryBuffer", "MMLogger", "MessageHub", "current_logger", "print_log"]

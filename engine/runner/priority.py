"""MMEngine's hook ``Priority`` enum and ``get_priority``, over `engine.hooks.hook.PRIORITIES`."""

from __future__ import annotations

from enum import Enum

from engine.hooks.hook import PRIORITIES, priority_value

Priority = Enum("Priority", PRIORITIES)  # Priority.NORMAL.value == 50
Priority.__doc__ = "Hook priorities: lower runs first (HIGHEST = 0 ... LOWEST = 100)."


def get_priority(priority: int | str | Priority) -> int:
    """``'NORMAL'``, ``Priority.NORMAL`` or an int in [0, 100] -> the int."""
    return priority_value(priority.value if isinstance(priority, Priority) else priority)

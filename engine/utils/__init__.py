"""The small helpers of MMEngine's ``mmengine.utils`` that ported code and tests import.

engine itself does not use them; they exist so that ``s/mmengine/engine/`` is the whole port.
"""

from engine.utils.misc import (
    has_method,
    is_list_of,
    is_method_overridden,
    is_seq_of,
    is_str,
    is_tuple_of,
    mkdir_or_exist,
    scandir,
)
from engine.utils.version_utils import digit_version, is_installed

__all__ = [
    "digit_version",
    "has_method",
    "is_installed",
    "is_list_of",
    "is_method_overridden",
    "is_seq_of",
    "is_str",
    "is_tuple_of",
    "mkdir_or_exist",
    "scandir",
]

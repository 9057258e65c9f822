"""MMEngine's ``mmengine.testing._internal`` import path: `MultiProcessTestCase`."""

from engine.testing._internal.multi_process import MultiProcessTestCase

__all__ = ["MultiProcessTestCase"]

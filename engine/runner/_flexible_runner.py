"""MMEngine's import path for `FlexibleRunner` (``mmengine.runner._flexible_runner``), which
its large-model guide uses; the class is in `engine.runner.flexible_runner`."""

from engine.runner.flexible_runner import FlexibleRunner

__all__ = ["FlexibleRunner"]

"""Test helpers with MMEngine's names (``mmengine.testing``)."""

from engine.testing.compare import assert_allclose

__all__ = ["assert_allclose"]

"""Test helpers with MMEngine's names (``mmengine.testing``)."""

from engine.testing.compare import assert_allclose
from engine.testing.runner_test_case import RunnerTestCase

__all__ = ["RunnerTestCase", "assert_allclose"]

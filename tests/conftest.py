import logging
import os

import pytest

# Tests must never reach a hub or use a GPU that a developer's machine happens to have.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Accelerate keeps process-wide singletons; each test starts from a clean one."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture
def engine_log():
    """Messages of the 'engine' logger (which need not propagate to pytest's caplog)."""
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("engine").addHandler(handler)
    yield records
    logging.getLogger("engine").removeHandler(handler)

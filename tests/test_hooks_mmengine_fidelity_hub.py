"""The message hub hooks read, as MMEngine's: HistoryBuffer statistics and checks, MessageHub
arguments, state_dict with objects that cannot be copied, the root hub's name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.logging import HistoryBuffer, MessageHub


@HistoryBuffer.register_statistics
def spread(self, window_size=None):
    values = self.data[0] if window_size is None else self.data[0][-window_size:]
    return float(values.max() - values.min())


def test_registered_statistics_are_reached_by_name():
    buffer = HistoryBuffer([1.0, 7.0, 3.0, 4.0])
    assert buffer.statistics("spread") == 6.0
    assert buffer.statistics("spread", 2) == 1.0  # of 3 and 4
    with pytest.raises(KeyError, match="spread"):  # the error lists what there is
        buffer.statistics("median")


def test_history_checks_are_mmengines_exceptions():
    for kind in (ValueError, AssertionError):
        with pytest.raises(kind, match="differ in length"):
            HistoryBuffer([1, 2], [1])
    buffer = HistoryBuffer()
    for kind in (TypeError, ValueError):
        with pytest.raises(kind, match="one-element"):
            buffer.update(torch.tensor([1.0, 2.0]))
        with pytest.raises(kind, match="one value at a time"):
            buffer.update(np.array([1.0, 2.0]))


def test_a_nested_history_is_flattened_and_trimmed():
    buffer = HistoryBuffer(np.array([[-1.0, 1.0, 2.0]]), np.array([[1, 1, 1]]), max_length=3)
    buffer.update(5.0)
    values, counts = buffer.data
    assert values.tolist() == [1.0, 2.0, 5.0] and counts.tolist() == [1, 1, 1]


def test_hub_arguments_are_checked():
    for kind in (ValueError, AssertionError):
        with pytest.raises(kind, match="must be HistoryBuffers"):
            MessageHub("bad_scalars", log_scalars={"a": 1})
        with pytest.raises(kind, match=r"resumed_keys \['iters'\]"):
            MessageHub("bad_keys", runtime_info={"iter": 1}, resumed_keys={"iters": False})
        with pytest.raises(kind, match="must be one number"):
            MessageHub("bad_update").update_scalars({"loss": []})
        with pytest.raises(kind, match="without 'value'"):
            MessageHub("bad_update2").update_scalars({"loss": {"count": 1}})


class NoCopy:
    def __deepcopy__(self, memo):
        raise NotImplementedError


def test_state_dict_keeps_objects_that_cannot_be_copied():
    hub = MessageHub("state")
    hub.update_scalar("loss", 0.25)
    hub.update_scalar("lr", 0.1, resumed=False)
    keep = NoCopy()
    hub.update_info("handle", keep)
    state = hub.state_dict()
    assert state["runtime_info"]["handle"] is keep and "lr" not in state["log_scalars"]
    other = MessageHub("restored")
    state["log_scalars"]["junk"] = 3  # not a buffer: skipped
    state["resumed_keys"]["absent"] = True  # a flag for nothing: skipped
    other.load_state_dict(state)
    assert other.get_scalar("loss").current() == 0.25 and other.get_info("handle") is keep
    assert "junk" not in other.log_scalars and "absent" not in other._resumed_keys


def test_the_root_hub_is_mmengines(monkeypatch):
    monkeypatch.setattr(MessageHub, "_instance_dict", {})
    root = MessageHub.get_current_instance()
    assert root is MessageHub.get_instance("mmengine")

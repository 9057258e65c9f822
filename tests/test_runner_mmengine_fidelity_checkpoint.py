"""MMEngine's ``.pth`` helpers in `engine.runner.checkpoint`: what migrating users load their
MMEngine/MMCV weights with (``load_checkpoint(model, path, map_location, strict, revise_keys)``)."""

import logging
import os
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from engine import Runner
from engine.checkpoint import CheckpointError, load_weights
from engine.checkpoint.pth_files import PickledRecord
from engine.fileio.file_client import PetrelBackend, get_file_backend
from engine.runner import load_checkpoint, save_checkpoint
from engine.runner.checkpoint import (
    CheckpointLoader,
    _load_checkpoint_with_prefix,
    get_state_dict,
    load_state_dict,
    weights_to_cpu,
)
from models import ParamModel


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.norm = nn.BatchNorm2d(4)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(4, 2)


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Net()


class Opaque:  # not a tensor nor a container: weights-only loading refuses it
    pass


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_round_trip_of_an_mmengine_style_file(tmp_path):
    torch.manual_seed(0)
    source = Net()
    # MMEngine's runner saves {'meta', 'state_dict', ...}; a DDP run's keys start 'module.'
    ddp_keys = OrderedDict((f"module.{k}", v) for k, v in source.state_dict().items())
    path = tmp_path / "epoch_12.pth"
    save_checkpoint({"meta": {"epoch": 12}, "state_dict": ddp_keys}, str(path))

    target = Net()
    assert not torch.equal(target.head.weight, source.head.weight)
    checkpoint = load_checkpoint(target, str(path), map_location="cpu", strict=True)
    assert checkpoint["meta"] == {"epoch": 12}
    assert _same(target.state_dict(), source.state_dict())  # default revise_keys strip 'module.'


def test_revise_keys_add_and_strip_a_prefix(tmp_path):
    torch.manual_seed(1)
    backbone = Net()
    path = str(tmp_path / "backbone.pth")
    save_checkpoint(backbone.state_dict(), path)
    detector = Detector()
    load_checkpoint(detector, path, strict=True, revise_keys=[(r"^", "backbone.")])
    assert _same(detector.backbone.state_dict(), backbone.state_dict())

    save_checkpoint(detector.state_dict(), path)
    plain = Net()
    load_checkpoint(plain, path, strict=True, revise_keys=[(r"^backbone\.", "")])
    assert _same(plain.state_dict(), backbone.state_dict())
    # and the prefix helper returns the sub-tree, prefix removed
    assert _same(_load_checkpoint_with_prefix("backbone", path), backbone.state_dict())
    with pytest.raises(AssertionError, match="neck"):
        _load_checkpoint_with_prefix("neck", path)


def test_strict_raises_and_loose_skips_mismatched_keys(caplog):
    model = Net()
    state = model.state_dict()
    before = model.head.weight.clone()
    wrong = OrderedDict(state)
    wrong["head.weight"] = torch.ones(3, 4)  # mis-shaped
    del wrong["block.conv.bias"]  # missing
    wrong["extra.weight"] = torch.ones(1)  # unexpected
    with pytest.raises(RuntimeError, match="block.conv.bias"):
        load_state_dict(model, wrong, strict=True)
    with caplog.at_level(logging.WARNING):
        load_state_dict(model, wrong, strict=False, logger=logging.getLogger("engine"))
    assert "missing keys in source state_dict: block.conv.bias" in caplog.text
    assert "unexpected key in source state_dict: extra.weight" in caplog.text
    assert "size mismatch for head.weight" in caplog.text
    assert torch.equal(model.head.weight, before)  # the mis-shaped tensor was skipped


def test_get_state_dict_looks_through_wrappers_at_any_depth():
    model = Net()
    plain = model.state_dict()
    model.block = nn.DataParallel(model.block)  # an inner wrapper adds 'module.' in torch
    assert "block.module.conv.weight" in model.state_dict()
    wrapped = nn.DataParallel(model)
    state = get_state_dict(wrapped)
    assert list(state) == list(plain)
    assert _same(state, plain)
    assert _same(weights_to_cpu(state), plain)
    # and loading goes through the same wrappers
    fresh = Net()
    fresh.block = nn.DataParallel(fresh.block)
    load_state_dict(nn.DataParallel(fresh), plain, strict=True)
    assert torch.equal(fresh.block.module.conv.weight, plain["block.conv.weight"])


def test_loading_is_weights_only_unless_the_file_is_trusted(tmp_path):
    path = str(tmp_path / "pickled.pth")
    torch.save({"state_dict": Net().state_dict(), "meta": Opaque()}, path)
    with pytest.raises(pickle.UnpicklingError, match="weights_only=False"):
        load_checkpoint(Net(), path)
    checkpoint = load_checkpoint(Net(), path, weights_only=False)
    assert isinstance(checkpoint["meta"], Opaque)


def test_a_failed_save_leaves_the_previous_file(tmp_path):
    path = tmp_path / "latest.pth"
    save_checkpoint({"step": torch.tensor(1)}, str(path))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint({"step": torch.tensor(2), "fn": lambda: 0}, str(path))
    assert torch.load(path, weights_only=True)["step"].item() == 1
    assert os.listdir(tmp_path) == ["latest.pth"]  # no partial file left behind


def test_checkpoint_loader_schemes(tmp_path):
    calls = []

    @CheckpointLoader.register_scheme(prefixes="mem://")
    def load_from_mem(filename, map_location):
        calls.append((filename, map_location))
        return {"w": torch.zeros(1)}

    assert CheckpointLoader.load_checkpoint("mem://x", "cpu") == {"w": torch.zeros(1)}
    assert calls == [("mem://x", "cpu")]
    with pytest.raises(KeyError, match="force=True"):
        CheckpointLoader.register_scheme("mem://", load_from_mem)
    with pytest.raises(NotImplementedError, match="download the file"):
        load_checkpoint(Net(), "open-mmlab://resnet50_v1c")
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_checkpoint(Net(), str(tmp_path / "nowhere.pth"))
    CheckpointLoader._schemes.pop("mem://")


def test_petrel_needs_its_client(monkeypatch):
    monkeypatch.setitem(sys.modules, "petrel_client", None)  # as if not installed
    with pytest.raises(ImportError, match="petrel_client"):
        PetrelBackend()
    with pytest.raises(ImportError, match="petrel_client"):
        save_checkpoint({}, "s3://bucket/model.pth")
    assert get_file_backend("/tmp/x.pth").name == "LocalBackend"
    with pytest.raises(ValueError, match="accepted: disk, local, petrel"):
        get_file_backend("x.pth", dict(backend="lmdb"))


def _mmengine_runner_checkpoint(path, model, monkeypatch, prefix="module."):
    """What MMEngine's Runner saves: NumPy values in meta, HistoryBuffer objects in the hub;
    written with a stand-in ``mmengine`` module that is gone again afterwards."""
    fake = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:
        def __init__(self):
            self._log_history = np.array([0.5, 0.25])
            self.max_length = 1000000

    HistoryBuffer.__module__ = fake.__name__
    HistoryBuffer.__qualname__ = "HistoryBuffer"
    fake.HistoryBuffer = HistoryBuffer
    names = ("mmengine", "mmengine.logging", fake.__name__)
    for name in names:
        monkeypatch.setitem(sys.modules, name, fake)
    torch.save(
        {
            "meta": {"epoch": 12, "seed": np.int64(7), "lr": np.float32(0.1)},
            "state_dict": OrderedDict((prefix + k, v) for k, v in model.state_dict().items()),
            "message_hub": {"log_scalars": {"train/loss": HistoryBuffer()}},
        },
        path,
    )
    for name in names:
        monkeypatch.delitem(sys.modules, name)  # as on a machine without MMEngine


def test_an_mmengine_runner_checkpoint_loads_without_mmengine(tmp_path, monkeypatch):
    torch.manual_seed(2)
    source = Net()
    path = str(tmp_path / "epoch_12.pth")
    _mmengine_runner_checkpoint(path, source, monkeypatch)
    target = Net()
    checkpoint = load_checkpoint(target, path, strict=True)
    assert _same(target.state_dict(), source.state_dict())
    assert checkpoint["meta"]["seed"] == 7
    record = checkpoint["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(record, PickledRecord)
    assert record.type_name == "mmengine.logging.history_buffer.HistoryBuffer"
    np.testing.assert_array_equal(record.state["_log_history"], [0.5, 0.25])
    assert "mmengine" not in sys.modules  # nothing was imported


def test_runner_load_from_an_mmengine_runner_checkpoint(tmp_path, monkeypatch):
    source = ParamModel()
    with torch.no_grad():
        source.p.fill_(3.5)
    path = str(tmp_path / "epoch_12.pth")
    _mmengine_runner_checkpoint(path, source, monkeypatch, prefix="")
    runner = Runner(model=ParamModel(), work_dir=None)
    load_weights(runner, path)  # what Runner(load_from=path) does before running
    assert runner.model.p.item() == 3.5


def test_load_from_still_refuses_other_pickles(tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"state_dict": {}, "extra": Opaque()}, path)
    with pytest.raises(CheckpointError, match="refused by weights-only loading"):
        load_weights(Runner(model=ParamModel(), work_dir=None), str(path))


def test_other_objects_are_refused_by_name(tmp_path):
    path = str(tmp_path / "odd.pth")
    torch.save({"state_dict": {}, "extra": Opaque()}, path)
    with pytest.raises(pickle.UnpicklingError, match=r"holds .*Opaque.*weights_only=False"):
        load_checkpoint(Net(), path)

"""The catalogue of bad inputs: each gives a clear one-line error and leaves work_dir as it was.

Every case runs in a copy of a work_dir that holds a finished run (checkpoints ``iter_2``
and ``iter_4``, ``last_checkpoint`` naming ``iter_4``). It must raise the expected type
with a one-line message containing the given fragments (what is wrong, what is
accepted); afterwards every file of the work_dir is still there, unchanged, nothing new
but ``run.log`` has appeared (no half-written checkpoint folder), and ``iter_4`` is still
the latest checkpoint.
"""

from __future__ import annotations

import errno
import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import engine.checkpoint.checkpoint_files
from engine import BaseModel, CheckpointError, CheckpointHook, Runner
from engine.checkpoint.manifest import write_manifest
from engine.checkpoint.save import find_latest_checkpoint
from run_files import is_run_folder


class Linear(BaseModel):
    def __init__(self, out: int = 1) -> None:
        super().__init__()
        self.net = nn.Linear(3, out)

    def forward(self, x, y, mode="tensor"):
        out = self.net(x)
        if mode == "loss":
            return {"loss": (out - y).pow(2).mean()}
        return list(out)


class TensorLoss(Linear):
    def forward(self, x, y, mode="tensor"):  # ignores mode: a tensor where losses belong
        return (self.net(x) - y).pow(2).mean()


class NoMode(Linear):
    def forward(self, x, y):
        return {"loss": self.net(x).sum()}


class NoLossKey(Linear):
    def forward(self, x, y, mode="tensor"):
        return {"error": (self.net(x) - y).abs().mean()}


class StringLoss(Linear):
    def forward(self, x, y, mode="tensor"):
        return {"loss": "0.5"}


class NoteStep(Linear):
    def train_step(self, data, optim_wrapper):
        return {**super().train_step(data, optim_wrapper), "note": "epoch went well"}


def data(n: int = 8) -> list:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return list(zip(x, x.sum(1, keepdim=True)))


def make(work_dir: Path, **overrides) -> Runner:
    kwargs = dict(
        model=Linear(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=data(), batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=4),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=None, checkpoint=CheckpointHook(interval=2, by_epoch=False)),
    )
    kwargs.update(overrides)
    return Runner(**kwargs)


def train(**overrides):
    return lambda work_dir: make(work_dir, **overrides).train()


def sgd(**wrapper) -> dict:
    return dict(optimizer=dict(type="SGD", lr=0.1), **wrapper)


def hooks(**default_hooks) -> dict:
    return {"logger": None, "checkpoint": None, **default_hooks}


def truncate(name: str):
    def prepare(work_dir: Path) -> None:
        path = work_dir / "iter_4" / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        write_manifest(path.parent)  # as a tamperer would: the readers must refuse it

    return prepare


def overwrite(name: str, content: bytes):
    def prepare(work_dir: Path) -> None:
        (work_dir / "iter_4" / name).write_bytes(content)
        write_manifest(work_dir / "iter_4")

    return prepare


def case(id: str, act, exc: type, *fragments: str, prepare=None):
    return pytest.param(act, exc, fragments, prepare, id=id)


CASES = [
    # -- configuration values and types --------------------------------------------------
    case("max_epochs=0", train(train_cfg=dict(by_epoch=True, max_epochs=0)), ValueError,
         "train_cfg max_epochs must be an int >= 1, got 0"),
    case("by_epoch with max_iters", train(train_cfg=dict(by_epoch=True, max_iters=4)), ValueError,
         "by_epoch=True takes max_epochs, not max_iters"),
    case("val_interval=0", train(train_cfg=dict(by_epoch=False, max_iters=4, val_interval=0)),
         ValueError, "val_interval must be an int >= 1, got 0"),
    case("train_cfg misspelt key", train(train_cfg=dict(max_epochs=2, val_intervl=1)), ValueError,
         "unknown keys ['val_intervl']", "accepted: by_epoch"),
    case("train_cfg not a dict", train(train_cfg=[("max_epochs", 2)]), TypeError,
         "train_cfg must be a dict", "got list"),
    case("unknown optimizer", train(optim_wrapper=dict(optimizer=dict(type="SGDD", lr=0.1))),
         ValueError, "'SGDD' is not a torch.optim optimizer", "accepted:", "AdamW"),
    case("lr as a string", train(optim_wrapper=dict(optimizer=dict(type="SGD", lr="1e-3"))),
         TypeError, "optimizer SGD lr must be a number, got '1e-3' (str); write lr=1e-3 without quotes"),
    case("negative momentum",
         train(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=-1))), ValueError,
         "optimizer SGD rejected its arguments", "Invalid momentum value: -1"),
    case("negative accumulative_counts", train(optim_wrapper=sgd(accumulative_counts=-2)),
         ValueError, "accumulative_counts must be an int >= 1, got -2"),
    case("clip_grad negative", train(optim_wrapper=sgd(clip_grad=dict(max_norm=-1))), ValueError,
         "clip_grad max_norm must be a number > 0, got -1"),
    case("clip_grad unknown type", train(optim_wrapper=sgd(clip_grad=dict(type="percent"))),
         ValueError, "clip_grad type 'percent' is unknown", "'value'"),
    case("clip_grad a number", train(optim_wrapper=sgd(clip_grad=1.0)), TypeError,
         "clip_grad must be a dict such as dict(max_norm=1.0)", "got float"),
    case("unknown optim_wrapper type", train(optim_wrapper=sgd(type="FancyOptimWrapper")),
         ValueError, "optim_wrapper type 'FancyOptimWrapper' is unknown", "AmpOptimWrapper"),
    case("empty optim_wrapper", train(optim_wrapper={}), ValueError,
         "optim_wrapper is an empty dict", "dict(optimizer=dict(type='SGD'"),
    case("optim_wrapper for a missing sub-module", train(optim_wrapper=dict(generator=sgd())),
         ValueError, "'generator' is neither 'optimizer' nor a sub-module", "sub-modules: ['data_preprocessor', 'net']"),
    case("AmpOptimWrapper dtype", train(optim_wrapper=sgd(type="AmpOptimWrapper", dtype="fp8e4")),
         ValueError, "AmpOptimWrapper dtype 'fp8e4' is unknown", "'bfloat16'"),
    case("unknown param_scheduler", train(param_scheduler=[dict(type="WarmupLR")]), ValueError,
         "param_scheduler entry {'type': 'WarmupLR'}", "expected one of", "LinearLR"),
    case("param_scheduler misspelt argument",
         train(param_scheduler=[dict(type="LinearLR", start_factr=0.1)]), TypeError,
         "param_scheduler entry", "unexpected keyword argument 'start_factr'"),
    case("param_scheduler a name", train(param_scheduler=["LinearLR"]), TypeError,
         "param_scheduler entries must be dicts", "got 'LinearLR'"),
    case("hook dict without type", train(custom_hooks=[dict(interval=5)]), TypeError,
         "a hook must be a Hook or dict(type=...)", "got {'interval': 5}"),
    case("unknown hook type", train(custom_hooks=[dict(type="TensorboardHook")]), ValueError,
         "hook type 'TensorboardHook' is unknown", "LoggerHook"),
    case("hook misspelt argument", train(custom_hooks=[dict(type="LoggerHook", intervl=5)]),
         TypeError, "hook LoggerHook rejected its arguments ['intervl']"),
    case("hook priority", train(custom_hooks=[dict(type="EMAHook", priority="URGENT")]),
         ValueError, "hook priority 'URGENT' is unknown", "'NORMAL'"),
    case("default_hooks not a dict", train(default_hooks=[dict(type="LoggerHook")]), TypeError,
         "default_hooks must be a dict", "got list"),
    case("custom_hooks not a list", train(custom_hooks=dict(type="EMAHook")), TypeError,
         "custom_hooks must be a list", "got dict"),
    case("LoggerHook interval=0", train(default_hooks=hooks(logger=dict(type="LoggerHook", interval=0))),
         ValueError, "LoggerHook interval must be an int >= 1, got 0"),
    case("CheckpointHook interval as a string",
         train(default_hooks=hooks(checkpoint=dict(type="CheckpointHook", interval="2"))),
         ValueError, "CheckpointHook interval must be an int, got '2'"),
    case("mixed_precision='fp17'", train(mixed_precision="fp17"), ValueError,
         "mixed_precision 'fp17' is unknown", "'bf16'"),
    case("nan_policy", train(nan_policy="halt"), ValueError,
         "nan_policy 'halt' is unknown", "'stop', 'skip', 'ignore'"),
    case("randomness seed", train(randomness=dict(seed="42")), ValueError,
         "randomness seed must be None or an int", "got '42'"),
    case("randomness misspelt key", train(randomness=dict(sed=0)), ValueError,
         "randomness has unknown keys ['sed']", "accepted: seed"),
    case("model_wrapper", train(model_wrapper="ddp"), ValueError,
         "model_wrapper 'ddp' is unknown", "'separate'"),
    case("model not a module", train(model=lambda x: x), TypeError,
         "model must be an nn.Module", "got function"),
    case("work_dir is a file", lambda wd: make(wd / "last_checkpoint").train(), NotADirectoryError,
         "is a file; expected a directory"),
    case("train without optim_wrapper", train(optim_wrapper=None), ValueError,
         "train() needs optim_wrapper"),
    # -- the model ----------------------------------------------------------------------
    case("forward returns a tensor in loss mode", train(model=TensorLoss()), TypeError,
         "forward(mode='loss') must return a dict of losses, got Tensor", "honour the `mode`"),
    case("forward without mode", train(model=NoMode()), TypeError,
         "NoMode.forward(x, y) has no `mode` argument", "'loss', 'predict' or 'tensor'"),
    case("no loss key", train(model=NoLossKey()), ValueError,
         "returned no key containing 'loss': got ['error']"),
    case("loss of a wrong type", train(model=StringLoss()), TypeError,
         "loss entry 'loss' is a str", "accepted: a tensor or a list of tensors"),
    case("train_step returns a string",
         train(model=NoteStep(), default_hooks=hooks(logger=dict(type="LoggerHook", interval=1))),
         TypeError, "outputs['note'] must be a tensor or a number, got str"),
    # -- the data -----------------------------------------------------------------------
    case("batches of strings", train(train_dataloader=["ab", "cd"]), TypeError,
         "a batch must be a dict", "or a list/tuple", "got str"),
    case("batches of bare ints", train(train_dataloader=[1, 2, 3]), TypeError,
         "a batch must be a dict", "got int"),
    case("dataset of ints (collated to a tensor)",
         train(train_dataloader=dict(dataset=list(range(8)), batch_size=2)), TypeError,
         "a batch must be a dict", "got Tensor"),
    case("dataloader dict without dataset", train(train_dataloader=dict(batch_size=2)),
         ValueError, "train_dataloader dict needs a 'dataset'"),
    case("dataloader not iterable", train(train_dataloader=5), TypeError,
         "train_dataloader must be a DataLoader, an iterable or a dict", "got int"),
    case("dataloader misspelt argument",
         train(train_dataloader=dict(dataset=data(), batchsize=2)), TypeError,
         "train_dataloader: DataLoader rejected the arguments", "batchsize"),
    # -- evaluation ---------------------------------------------------------------------
    case("val_dataloader without evaluator",
         train(val_dataloader=dict(dataset=data(), batch_size=2)), ValueError,
         "val_dataloader is set but val_evaluator is None", "pass both"),
    case("val_evaluator without dataloader", train(val_evaluator=dict(type="Accuracy")),
         ValueError, "val_evaluator is set but val_dataloader is None"),
    case("evaluator a name", train(val_evaluator="Accuracy"), TypeError,
         "val_evaluator must be an Evaluator, a BaseMetric", "got str"),
    case("unknown metric", train(val_evaluator=dict(type="mAP")), ValueError,
         "cannot build a metric from {'type': 'mAP'}", "accepted: a BaseMetric"),
    # -- checkpoints --------------------------------------------------------------------
    case("resume from a missing path", train(resume="no/such/run"), FileNotFoundError,
         "resume 'no/such/run' does not exist", "checkpoint folder"),
    case("load_from a missing path", train(load_from="no/such.pth"), FileNotFoundError,
         "load_from 'no/such.pth' does not exist", ".safetensors"),
    case("load_from dict misspelt", train(load_from=dict(pth="x")), ValueError,
         "load_from dict takes 'path' and 'strict'"),
    case("truncated safetensors", train(resume=True), CheckpointError,
         "model.safetensors is not a readable safetensors file",
         prepare=truncate("model.safetensors")),
    case("bad JSON", lambda wd: make(wd, resume=wd / "iter_4").train(), CheckpointError,
         "engine_state.json is not valid JSON", prepare=overwrite("engine_state.json", b"{oops")),
    case("corrupt optimizer file", train(resume=True), CheckpointError,
         "optimizer.pt is corrupt or truncated", prepare=truncate("optimizer.pt")),
    case("resume with a different model", train(model=Linear(out=2), resume=True),
         CheckpointError, "does not fit the model",
         "net.weight (1, 3) in the checkpoint vs (2, 3) in the model"),
]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    work_dir = tmp_path_factory.mktemp("bad_inputs") / "run"
    make(work_dir).train()
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return work_dir


@pytest.fixture
def work_dir(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def snapshot(work_dir: Path) -> dict[str, str]:
    """Every entry under `work_dir`: a file's sha256, or 'dir'. Each Runner opens a run folder
    for its log by design; the checkpoints must not change."""
    return {
        str(p.relative_to(work_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in work_dir.rglob("*")
        if not is_run_folder(p.relative_to(work_dir).parts[0])
    }


def assert_consistent(work_dir: Path, before: dict[str, str]) -> None:
    after = snapshot(work_dir)
    assert after == before, {
        "lost or changed": sorted(k for k in before if after.get(k) != before[k]),
        "new": sorted(set(after) - set(before)),
    }
    assert find_latest_checkpoint(work_dir, verify=False).name == "iter_4"


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 20


@pytest.mark.parametrize(("act", "exc", "fragments", "prepare"), CASES)
def test_bad_input(work_dir, act, exc, fragments, prepare):
    if prepare is not None:
        prepare(work_dir)
    before = snapshot(work_dir)
    with pytest.raises(exc) as err:
        act(work_dir)
    message = str(err.value)
    assert message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert_consistent(work_dir, before)


def test_full_disk_during_a_save_keeps_the_previous_checkpoint(work_dir, monkeypatch):
    """A write fails with ENOSPC while iter_6 is being saved (its weights and optimizer are
    written, its state file is not): the error is one line, no partial folder remains,
    and iter_4 stays the latest and resumes."""
    before = snapshot(work_dir)

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(engine.checkpoint.checkpoint_files, "write_json", full_disk)
    runner = make(work_dir, resume=True, train_cfg=dict(by_epoch=False, max_iters=8))
    with pytest.raises(
        CheckpointError,
        match="saving checkpoint 'iter_6' failed at .*: no space left on the device "
        r"\(.* free there\); free space or choose another work_dir; the previous checkpoint is intact",
    ) as err:
        runner.train()
    assert err.value.__cause__.errno == errno.ENOSPC and "\n" not in str(err.value)
    assert runner.state.iter == 6
    monkeypatch.undo()
    assert_consistent(work_dir, before)

    # The run goes on from iter_4 to 8 and ends where an uninterrupted run to 8 ends.
    resumed = make(work_dir, resume=True, train_cfg=dict(by_epoch=False, max_iters=8))
    resumed.train()
    assert resumed.state.iter == 8 and find_latest_checkpoint(work_dir).name == "iter_8"
    # Reference: plain PyTorch from iter_4's weights over the 4 batches of the second pass.
    net = nn.Linear(3, 1)
    weights = load_file(work_dir / "iter_4" / "model.safetensors")
    net.load_state_dict({k.removeprefix("net."): v for k, v in weights.items()})
    sgd = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = (torch.stack(t) for t in zip(*data()))
    for i in range(0, 8, 2):
        sgd.zero_grad()
        (net(x[i : i + 2]) - y[i : i + 2]).pow(2).mean().backward()
        sgd.step()
    assert not torch.equal(net.weight, weights["net.weight"])
    torch.testing.assert_close(resumed._raw_model.net.weight, net.weight, rtol=0, atol=1e-7)
    torch.testing.assert_close(resumed._raw_model.net.bias, net.bias, rtol=0, atol=1e-7)
    resumed_from_iter_4 = make(work_dir / "x", resume=work_dir / "iter_4")
    resumed_from_iter_4._load_checkpoint()
    assert resumed_from_iter_4.state.iter == 4  # the save at 6 never touched iter_4

"""The catalogue of user mistakes: each is one line saying what was wrong and what is
accepted, before any work, and leaves work_dir as it was.

It extends tests/test_bad_inputs.py (whose cases are not repeated here) with the mistakes
a reliability campaign found users make: wrong types in configs, models that return the
wrong thing or nothing trainable, data of the wrong shape, resume with changed settings,
misspelt names, unusable folders. Every case runs in a copy of a work_dir holding a
finished run (``iter_2``, ``iter_4``, ``last_checkpoint`` naming ``iter_4``); afterwards
every file is still there and unchanged and nothing new but ``run.log`` has appeared.

Mistakes that used to pass silently (a hook method named after no event, ``val_begin``
beyond the run, a loss that broadcasts (N, 1) against (N,)) warn once, naming the method
or setting: see the tests at the end.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from engine import (
    Accuracy,
    BaseMetric,
    BaseModel,
    CheckpointError,
    CheckpointHook,
    Hook,
    LoggerHook,
    Runner,
)
from engine.checkpoint.find import find_latest_checkpoint
from engine.checkpoint.manifest import write_manifest


# -- models, each with one mistake -----------------------------------------------------------
class Linear(BaseModel):
    def __init__(self, features: int = 3) -> None:
        super().__init__()
        self.net = nn.Linear(features, 1)

    def forward(self, x, y, mode="tensor"):
        out = self.net(x)
        if mode == "loss":
            return {"loss": (out - y).pow(2).mean()}
        return list(out)


class Returns(Linear):
    """forward(mode='loss') returns `value(self, x, y)`."""

    def __init__(self, value) -> None:
        super().__init__()
        self.value = value

    def forward(self, x, y, mode="tensor"):
        return self.value(self, x, y)


def mse(self, x, y):
    return (self.net(x) - y).pow(2).mean()


class Frozen(Linear):
    def __init__(self) -> None:
        super().__init__()
        self.net.requires_grad_(False)


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)

    def forward(self, x, y):
        return self.net(x)


class Bigger(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)
        self.head = nn.Linear(1, 1)

    def forward(self, x, y, mode="tensor"):
        return {"loss": (self.head(self.net(x)) - y).pow(2).mean()}


class Renamed(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 1)

    def forward(self, x, y, mode="tensor"):
        return {"loss": (self.body(x) - y).pow(2).mean()}


class ListMetric(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.append(1.0)

    def compute_metrics(self, results):
        return [sum(results)]


class NoneMetric(ListMetric):
    def compute_metrics(self, results):
        self.total = sum(results)  # forgot the return


# -- data -------------------------------------------------------------------------------
def data(n: int = 8, features: int = 3) -> list:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    return list(zip(x, x.sum(1, keepdim=True)))


def dict_data(keys=("inputs", "label")) -> list:
    return [dict(zip(keys, pair)) for pair in data()]


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


def val(**overrides):
    loaders = dict(val_dataloader=dict(dataset=data(), batch_size=2))
    return lambda work_dir: make(work_dir, **{**loaders, **overrides}).val()


def optimizer(**cfg) -> dict:
    return dict(optim_wrapper=dict(optimizer={"type": "SGD", "lr": 0.1, **cfg}))


def adam(**cfg) -> dict:
    return dict(optim_wrapper=dict(optimizer={"type": "Adam", "lr": 0.01, **cfg}))


def loop(**cfg) -> dict:
    return dict(train_cfg=cfg)


def hooks(**default_hooks) -> dict:
    return dict(default_hooks={"logger": None, "checkpoint": None, **default_hooks})


def resume_in(*parts: str, **overrides):
    return lambda wd: make(wd, resume=wd.joinpath(*parts), **overrides).train()


def load_in(*parts: str, **overrides):
    return lambda wd: make(wd, load_from=wd.joinpath(*parts), **overrides).train()


def case(id: str, act, exc: type, *fragments: str, prepare=None):
    return pytest.param(act, exc, fragments, prepare, id=id)


def save_pickle(name: str, obj):
    def prepare(work_dir: Path) -> None:
        with open(work_dir / name, "wb") as f:
            pickle.dump(obj, f)

    return prepare


def make_best(work_dir: Path) -> None:
    """A best checkpoint as CheckpointHook(save_best=...) writes it: weights and state only."""
    best = Path(shutil.copytree(work_dir / "iter_4", work_dir / "best_loss"))
    state = json.loads((best / "engine_state.json").read_text())
    state["meta"]["resumable"] = False
    (best / "engine_state.json").write_text(json.dumps(state))
    for path in [best / "optimizer.pt", *best.glob("rng_state_*.json")]:
        path.unlink()
    write_manifest(best)


CASES = [
    # -- the optimizer and its wrapper ------------------------------------------------
    case("lr='1e-2'", train(**optimizer(lr="1e-2")), TypeError,
         "optimizer SGD lr must be a number, got '1e-2' (str)", "write lr=1e-2 without quotes"),
    case("lr=None", train(**optimizer(lr=None)), TypeError,
         "optimizer SGD lr must be a number, got None"),
    case("momentum='0.9'", train(**optimizer(momentum="0.9")), TypeError,
         "optimizer SGD momentum must be a number, got '0.9'"),
    case("weight_decay as a list", train(**optimizer(weight_decay=[1e-4])), TypeError,
         "optimizer SGD weight_decay must be a number, got [0.0001]"),
    case("Adam eps='1e-8'", train(**adam(eps="1e-8")), TypeError,
         "optimizer Adam eps must be a number, got '1e-8'"),
    case("Adam betas=0.9", train(**adam(betas=0.9)), TypeError,
         "optimizer Adam betas must be a pair of numbers, got 0.9", "betas=(0.9, 0.999)"),
    case("Adam betas of strings", train(**adam(betas=("0.9", "0.99"))), TypeError,
         "optimizer Adam betas must be a pair of numbers, got ('0.9', '0.99')"),
    case("negative lr", train(**optimizer(lr=-0.1)), ValueError,
         "optimizer SGD rejected its arguments", "Invalid learning rate: -0.1"),
    case("optim_wrapper=dict(type='SGD', lr=...)",
         train(optim_wrapper=dict(type="SGD", lr=0.1)), ValueError,
         "optim_wrapper=dict(type='SGD', ...) names an optimizer, not a wrapper",
         "optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1))"),
    case("optim_wrapper=dict(type='AdamW', ...)",
         train(optim_wrapper=dict(type="AdamW", lr=1e-3, weight_decay=0.05)), ValueError,
         "optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.05))"),
    case("optim_wrapper a string", train(optim_wrapper="SGD"), TypeError,
         "optim_wrapper must be an OptimWrapper", "got str"),
    case("optimizer without type", train(optim_wrapper=dict(optimizer=dict(lr=0.1))), TypeError,
         "optimizer must be a torch optimizer or dict(type='SGD', lr=...)", "{'lr': 0.1}"),
    case("optimizer a name", train(optim_wrapper=dict(optimizer="SGD")), TypeError,
         "optimizer must be a torch optimizer or dict(type='SGD', lr=...)", "'SGD'"),
    case("optim_wrapper misspelt key",
         train(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), clip_grads=None)),
         ValueError, "optim_wrapper has unsupported keys ['clip_grads']", "accepted:"),
    case("optim_wrapper member not a dict", train(optim_wrapper=dict(net=0.1)), TypeError,
         "optim_wrapper['net'] must be an OptimWrapper or dict(optimizer=...)", "got 0.1"),
    case("accumulative_counts as a string",
         train(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts="4")),
         ValueError, "accumulative_counts must be an int >= 1, got '4'"),
    case("accumulative_counts=0",
         train(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=0)),
         ValueError, "accumulative_counts must be an int >= 1, got 0"),
    case("clip_grad max_norm as a string",
         train(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), clip_grad=dict(max_norm="1"))),
         ValueError, "clip_grad max_norm must be a number > 0, got '1'"),
    case("every parameter frozen", train(model=Frozen()), ValueError,
         "Frozen has no trainable parameters", "requires_grad=False"),
    # -- the loop -----------------------------------------------------------------------
    case("max_epochs as a string", train(**loop(by_epoch=True, max_epochs="2")), ValueError,
         "train_cfg max_epochs must be an int >= 1, got '2'"),
    case("max_iters as a float", train(**loop(by_epoch=False, max_iters=2.5)), ValueError,
         "train_cfg max_iters must be an int >= 1, got 2.5"),
    case("max_iters negative", train(**loop(by_epoch=False, max_iters=-4)), ValueError,
         "train_cfg max_iters must be an int >= 1, got -4"),
    case("no limit at all", train(**loop(by_epoch=True)), ValueError,
         "train_cfg max_epochs must be an int >= 1, got None"),
    case("by_epoch=False with max_epochs", train(**loop(by_epoch=False, max_epochs=2)),
         ValueError, "by_epoch=False takes max_iters, not max_epochs"),
    case("val_begin negative", train(**loop(by_epoch=False, max_iters=4, val_begin=-1)),
         ValueError, "train_cfg val_begin must be an int >= 0, got -1"),
    case("val_interval as a string", train(**loop(by_epoch=False, max_iters=4, val_interval="2")),
         ValueError, "train_cfg val_interval must be an int >= 1, got '2'"),
    case("unknown loop type", train(train_cfg=dict(type="EpochLoop", max_epochs=2)), ValueError,
         "train_cfg type 'EpochLoop' is unknown", "EpochBasedTrainLoop"),
    case("train without train_cfg", train(train_cfg=None), ValueError,
         "train() needs train_cfg"),
    case("train without a dataloader", train(train_dataloader=None), ValueError,
         "train() needs train_dataloader"),
    case("train with nothing", train(train_dataloader=None, train_cfg=None, optim_wrapper=None),
         ValueError, "train() needs train_dataloader, train_cfg, optim_wrapper; pass them"),
    case("val without a dataloader", lambda wd: make(wd).val(), ValueError,
         "val() needs val_dataloader and val_evaluator"),
    case("test without a dataloader", lambda wd: make(wd).test(), ValueError,
         "test() needs test_dataloader and test_evaluator"),
    # -- the model ---------------------------------------------------------------------
    case("a plain nn.Module", train(model=Plain()), TypeError,
         "model Plain is a plain nn.Module; engine needs an engine.BaseModel",
         "give forward a `mode` argument"),
    case("model=None", train(model=None), TypeError,
         "model must be an nn.Module", "got NoneType"),
    case("model class that needs arguments", train(model=nn.Linear), TypeError,
         "model must be an nn.Module", "a callable with no arguments returning one, got type"),
    case("model dict of an unregistered name", train(model=dict(type="Linear")), ValueError,
         "model type 'Linear' is unknown", "engine.registry.MODELS.register_module()"),
    case("loss detached from the graph", train(model=Returns(lambda m, x, y: {"loss": mse(m, x, y).detach()})),
         RuntimeError, "Returns.forward(mode='loss') returned losses ['loss'] that do not require grad",
         "detached from the graph"),
    case("loss built from .item()", train(model=Returns(lambda m, x, y: {"loss": torch.tensor(mse(m, x, y).item())})),
         RuntimeError, "returned losses ['loss'] that do not require grad"),
    case("one of two losses detached",
         train(model=Returns(lambda m, x, y: {"loss_a": mse(m, x, y).detach(), "loss_b": mse(m, x, y).detach() * 0})),
         RuntimeError, "returned losses ['loss_a', 'loss_b'] that do not require grad"),
    case("loss as a Python float", train(model=Returns(lambda m, x, y: {"loss": mse(m, x, y).item()})),
         TypeError, "loss entry 'loss' is a float", "accepted: a tensor or a list of tensors"),
    case("forward returns None", train(model=Returns(lambda m, x, y: None)), TypeError,
         "forward(mode='loss') must return a dict of losses, got NoneType"),
    case("forward returns a list", train(model=Returns(lambda m, x, y: [mse(m, x, y)])), TypeError,
         "must return a dict of losses, got list"),
    case("forward returns a tuple", train(model=Returns(lambda m, x, y: (mse(m, x, y), 0.5))),
         TypeError, "must return a dict of losses, got tuple"),
    case("loss key capitalised", train(model=Returns(lambda m, x, y: {"Loss": mse(m, x, y)})),
         ValueError, "returned no key containing 'loss': got ['Loss']"),
    case("loss a list of floats", train(model=Returns(lambda m, x, y: {"loss": [1.0, 2.0]})),
         TypeError, "loss entry 'loss' is a list", "accepted: a tensor or a list of tensors"),
    case("loss a dict", train(model=Returns(lambda m, x, y: {"loss": {"a": mse(m, x, y)}})),
         TypeError, "loss entry 'loss' is a dict"),
    case("data_preprocessor a string", lambda wd: BaseModel(data_preprocessor="ImgDataPreprocessor"),
         TypeError, "data_preprocessor", "an nn.Module, a dict with 'type' or None", "got str"),
    case("data_preprocessor unknown type",
         lambda wd: BaseModel(data_preprocessor=dict(type="DetDataPreprocessor")), ValueError,
         "DetDataPreprocessor"),
    # -- the data ------------------------------------------------------------------------
    case("batch of the wrong width", train(train_dataloader=dict(dataset=data(features=4), batch_size=2)),
         RuntimeError, "Linear.forward(x, y, mode='tensor')", "rejected the batch",
         "[0]: (2, 4) float32, [1]: (2, 1) float32", "mat1 and mat2 shapes cannot be multiplied"),
    case("targets of another length",
         train(train_dataloader=dict(dataset=[(x, y.repeat(3)) for x, y in data()], batch_size=2),
               model=Returns(lambda m, x, y: {"loss": (m.net(x).squeeze(1) - y.flatten()).abs().mean()})),
         RuntimeError, "rejected the batch in mode 'loss'", "[1]: (2, 3) float32", "must match"),
    case("integer inputs", train(train_dataloader=dict(dataset=[(x.long(), y) for x, y in data()], batch_size=2)),
         RuntimeError, "rejected the batch", "[0]: (2, 3) int64", "dtype"),
    case("batch keys that forward does not take", train(train_dataloader=dict(dataset=dict_data(), batch_size=2)),
         TypeError, "Linear.forward(x, y, mode='tensor')", "does not take the batch",
         "inputs: (2, 3) float32, label: (2, 1) float32"),
    case("batch with an extra item",
         train(train_dataloader=dict(dataset=[(x, y, y) for x, y in data()], batch_size=2)),
         TypeError, "does not take the batch", "[2]: (2, 1) float32"),
    case("batch with one item missing", train(train_dataloader=dict(dataset=[(x,) for x, _ in data()], batch_size=2)),
         TypeError, "does not take the batch", "[0]: (2, 3) float32"),
    case("batch_size=0", train(train_dataloader=dict(dataset=data(), batch_size=0)), ValueError,
         "train_dataloader: DataLoader rejected the arguments", "batch_size"),
    case("batch_size as a string", train(train_dataloader=dict(dataset=data(), batch_size="2")),
         ValueError, "train_dataloader: DataLoader rejected the arguments", "batch_size"),
    case("num_workers negative", train(train_dataloader=dict(dataset=data(), batch_size=2, num_workers=-1)),
         ValueError, "train_dataloader: DataLoader rejected the arguments", "num_workers"),
    case("dataloader a number", train(val_dataloader=3, val_evaluator=Accuracy()), TypeError,
         "val_dataloader must be a DataLoader, an iterable or a dict", "got int"),
    case("dataset None", train(train_dataloader=dict(dataset=None, batch_size=2)), ValueError,
         "train_dataloader dict needs a 'dataset'"),
    # -- evaluation ---------------------------------------------------------------------
    case("compute_metrics returns a list", val(val_evaluator=ListMetric()), TypeError,
         "ListMetric.compute_metrics returned a list", "must return a dict of metric name -> value"),
    case("compute_metrics returns nothing", val(val_evaluator=NoneMetric()), TypeError,
         "NoneMetric.compute_metrics returned a NoneType", "must return a dict"),
    case("Accuracy topk=0", val(val_evaluator=dict(type="Accuracy", topk=0)), ValueError,
         "topk must be positive ints, got 0"),
    case("Accuracy topk as a string", val(val_evaluator=dict(type="Accuracy", topk="1")), ValueError,
         "topk must be positive ints, got '1'"),
    case("metric list with a name", val(val_evaluator=[Accuracy(), "mAP"]), ValueError,
         "cannot build a metric from 'mAP'", "accepted: a BaseMetric or dict(type=..., ...)"),
    case("evaluator an int", val(val_evaluator=1), TypeError,
         "val_evaluator must be an Evaluator, a BaseMetric", "got int"),
    case("val without an evaluator", val(), ValueError,
         "val() needs val_dataloader and val_evaluator"),
    # -- hooks --------------------------------------------------------------------------
    case("hook class, not instance", train(custom_hooks=[LoggerHook]), TypeError,
         "a hook must be a Hook or dict(type=...)"),
    case("hook of another kind", train(custom_hooks=[object()]), TypeError,
         "a hook must be a Hook or dict(type=...)", "object"),
    case("checkpoint rule misspelt",
         train(**hooks(checkpoint=dict(type="CheckpointHook", save_best="loss", rule="bigger"))),
         ValueError, "rule must be 'greater', 'less' or None", "'bigger'"),
    case("max_keep_ckpts as a string",
         train(**hooks(checkpoint=dict(type="CheckpointHook", max_keep_ckpts="3"))), ValueError,
         "CheckpointHook max_keep_ckpts must be an int", "'3'"),
    case("EMA momentum of 2", train(custom_hooks=[dict(type="EMAHook", momentum=2)]), ValueError,
         "EMAHook momentum must be in (0, 1), got 2"),
    case("early stopping patience negative",
         train(custom_hooks=[dict(type="EarlyStoppingHook", monitor="loss", patience=-1)]), ValueError,
         "EarlyStoppingHook patience must be an int >= 0, got -1"),
    case("NanGuardHook interval 0", train(custom_hooks=[dict(type="NanGuardHook", interval=0)]),
         ValueError, "NanGuardHook interval must be an int >= 1, got 0"),
    case("default hook misspelt", train(default_hooks=dict(chekpoint=dict(type="CheckpointHook"))),
         ValueError, "default_hooks key 'chekpoint' is not a default hook name; did you mean 'checkpoint'?"),
    case("custom hook misspelt type", train(custom_hooks=[dict(type="EMAhook")]), ValueError,
         "hook type 'EMAhook' is unknown", "EMAHook"),
    # -- run settings -----------------------------------------------------------------------
    case("seed as a float", train(randomness=dict(seed=1.5)), ValueError,
         "randomness seed must be None or an int", "got 1.5"),
    case("randomness a number", train(randomness=42), TypeError,
         "randomness must be a dict", "got int"),
    case("deterministic as a string", train(randomness=dict(seed=0, deterministic="yes")),
         ValueError, "randomness deterministic must be True or False, got 'yes'"),
    case("nan_policy None", train(nan_policy=None), ValueError,
         "nan_policy None is unknown", "'stop', 'skip', 'ignore'"),
    case("mixed_precision=True", train(mixed_precision=True), ValueError,
         "mixed_precision True is unknown", "'bf16'"),
    case("model_wrapper a number", train(model_wrapper=5), ValueError,
         "model_wrapper 5 is unknown", "'separate'"),
    case("model_wrapper twice", train(model_wrapper="separate", model_wrapper_cfg="separate"),
         ValueError, "pass model_wrapper or MMEngine's model_wrapper_cfg, not both"),
    case("compile misspelt", train(compile=dict(mod="max-autotune")), ValueError,
         "compile", "mod"),
    case("param_scheduler milestones as a string",
         train(param_scheduler=[dict(type="MultiStepLR", milestones="2,4")]), ValueError,
         "param_scheduler entry", "milestones='2,4' is invalid; expected a list of ints >= 0"),
    case("param_scheduler a single dict", train(param_scheduler=dict(type="LinearLR", start_factor="0.1")),
         TypeError, "start_factor"),
    # -- folders and checkpoints ----------------------------------------------------------
    case("work_dir a number", lambda wd: make(42).train(), TypeError,
         "work_dir must be a path (str or Path) or None, got int"),
    case("work_dir inside a file", lambda wd: make(wd / "last_checkpoint" / "run").train(),
         NotADirectoryError, "last_checkpoint"),
    case("resume from a weights file", resume_in("iter_4", "model.safetensors"), CheckpointError,
         "resume", "model.safetensors", "is a file; expected a checkpoint folder"),
    case("resume from a best checkpoint", resume_in("best_loss"), CheckpointError,
         "holds weights only (a best checkpoint)", "pass it as load_from", prepare=make_best),
    case("resume the work_dir itself", lambda wd: make(wd, resume=wd).train(), FileNotFoundError,
         "engine_state.json"),
    case("resume with a model that grew", resume_in("iter_4", model=Bigger()), CheckpointError,
         "does not fit the model", "missing keys [head.weight, head.bias]"),
    case("resume with renamed layers", resume_in("iter_4", model=Renamed()), CheckpointError,
         "missing keys [body.weight, body.bias]", "unexpected keys [net.bias, net.weight]"),
    case("resume with another optimizer", resume_in("iter_4", **adam()), CheckpointError,
         "iter_4 holds", "state of another optimizer type"),
    case("load_from a work_dir", lambda wd: make(wd, load_from=wd).train(), FileNotFoundError,
         "model.safetensors does not exist", "a checkpoint folder holding model.safetensors"),
    case("load_from a pickled model", load_in("model.pth"), CheckpointError,
         "model.pth was refused by weights-only loading", "nothing in it was run",
         prepare=save_pickle("model.pth", {"state_dict": Linear()})),
    case("load_from a model of another shape", load_in("iter_4", model=Linear(features=4)),
         CheckpointError, "does not fit the model", "net.weight (1, 3) in the checkpoint vs (1, 4)"),
    case("load_from strict misspelt", lambda wd: make(wd, load_from=dict(path=wd / "iter_4", stric=False)).train(),
         ValueError, "load_from dict takes 'path' and 'strict'", "stric"),
]  # fmt: skip


def test_the_catalogue_has_at_least_80_mistakes():
    assert len(CASES) >= 80


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    work_dir = tmp_path_factory.mktemp("mistakes") / "run"
    make(work_dir).train()
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return work_dir


@pytest.fixture
def work_dir(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def snapshot(work_dir: Path) -> dict[str, str]:
    """Every entry under `work_dir`: a file's sha256, or 'dir'. run.log grows by design."""
    return {
        str(p.relative_to(work_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in work_dir.rglob("*")
        if p.name != "run.log"
    }


@pytest.mark.parametrize(("act", "exc", "fragments", "prepare"), CASES)
def test_mistake(work_dir, act, exc, fragments, prepare):
    if prepare is not None:
        prepare(work_dir)
    before = snapshot(work_dir)
    with pytest.raises(exc) as err:
        act(work_dir)
    message = str(err.value)
    assert message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    after = snapshot(work_dir)
    assert after == before, {
        "lost or changed": sorted(k for k in before if after.get(k) != before[k]),
        "new": sorted(set(after) - set(before)),
    }
    assert find_latest_checkpoint(work_dir).name == "iter_4"


# -- mistakes that passed silently: one warning each, naming the method or setting -----------
class Misnamed(Hook):
    def after_train_iteration(self, runner, batch_idx, data_batch=None, outputs=None):
        raise AssertionError("never called")


class Broadcasting(Linear):
    def forward(self, x, y, mode="tensor"):
        if mode == "loss":  # (N, 1) - (N,): an (N, N) matrix of every pair
            return {"loss": (self.net(x) - y.squeeze(1)).pow(2).mean()}
        return list(self.net(x))


def test_a_hook_method_named_after_no_event_warns_once_with_the_closest_event(tmp_path, engine_log):
    make(tmp_path / "a", custom_hooks=[Misnamed()]).train()
    make(tmp_path / "b", custom_hooks=[Misnamed()]).train()
    warned = [m for m in engine_log if "after_train_iteration" in m]
    assert warned == [
        "Misnamed.after_train_iteration is not a hook event and is never called; "
        "did you mean after_train_iter?"
    ]


def test_val_begin_beyond_the_run_warns_that_it_never_validates(tmp_path, engine_log):
    runner = make(
        tmp_path,
        train_cfg=dict(by_epoch=True, max_epochs=2, val_begin=3),
        val_dataloader=dict(dataset=data(), batch_size=2),
        val_evaluator=ListMetric(),
    )
    assert (
        "train_cfg val_begin=3 is beyond the run (max_epochs=2): it never validates; "
        "set val_begin <= 2"
    ) in engine_log
    assert runner.train() == {}  # indeed no validation ran


def test_a_loss_that_broadcasts_n1_against_n_warns_once(tmp_path, engine_log):
    make(tmp_path, model=Broadcasting(), train_cfg=dict(by_epoch=False, max_iters=4)).train()
    warned = [m for m in engine_log if "broadcasting" in m]
    assert warned == [
        "Broadcasting.forward(mode='loss') combines tensors of shapes (2, 1) and (2,) into "
        "(2, 2): broadcasting pairs every prediction with every target; make the shapes equal "
        "(e.g. squeeze(1) or unsqueeze(1))"
    ]


def test_a_correct_loss_does_not_warn(tmp_path, engine_log):
    make(tmp_path).train()
    assert not [m for m in engine_log if "broadcasting" in m or "never" in m]

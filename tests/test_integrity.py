"""The corruption campaign: no damaged checkpoint loads a different result without a word.

A run with dropout and an EMA writes ``iter_2`` and ``iter_4`` (every kind of file:
weights, optimizer, hook tensors, state JSON, RNG state, manifest). Each file of ``iter_4``
is then damaged in turn — one flipped byte, the same file from ``iter_2`` mixed in,
truncated, zeroed — and:

* ``resume=True`` skips ``iter_4`` for ``iter_2`` with one warning naming the damaged file,
  and resumes exactly what ``iter_2`` holds;
* ``resume='.../iter_4'`` (named explicitly) is refused with one line naming the file;
* ``load_from`` and export refuse damaged weights, naming the file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from engine import BaseModel, CheckpointError, CheckpointHook, EMAHook, Runner, export_weights
from engine.checkpoint.find import find_latest_checkpoint
from engine.checkpoint.manifest import write_manifest


class DropoutNet(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1))

    def forward(self, x, y, mode="tensor"):
        return {"loss": (self.net(x) - y).pow(2).mean()}


def data() -> list:
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    return list(zip(x, x.sum(1, keepdim=True)))


def make(work_dir: Path, **overrides) -> Runner:
    kwargs = dict(
        model=DropoutNet(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=data(), batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=4),
        optim_wrapper=dict(optimizer=dict(type="Adam", lr=0.01)),
        default_hooks=dict(logger=None, checkpoint=CheckpointHook(interval=2, by_epoch=False)),
        custom_hooks=[dict(type="EMAHook")],
        randomness=dict(seed=0),
    )
    kwargs.update(overrides)
    return Runner(**kwargs)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    work_dir = tmp_path_factory.mktemp("integrity") / "run"
    make(work_dir).train()
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return work_dir


@pytest.fixture
def work_dir(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


FILES = ["model.safetensors", "optimizer.pt", "engine_tensors.safetensors",
         "engine_state.json", "rng_state_0.json"]  # fmt: skip


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def older(path: Path) -> None:
    shutil.copy(path.parents[1] / "iter_2" / path.name, path)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


DAMAGE = {"flipped byte": flip, "from iter_2": older, "truncated": truncate, "zeroed": zero}
CASES = [(name, kind) for name in FILES for kind in DAMAGE]


def test_the_run_wrote_every_kind_of_file(finished_run):
    names = {p.name for p in (finished_run / "iter_4").iterdir()}
    assert names == {*FILES, "manifest.json"}
    for name in FILES:  # mixing in iter_2's copy really is a change
        a, b = (finished_run / f"iter_{i}" / name for i in (2, 4))
        assert a.read_bytes() != b.read_bytes(), name


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning_naming_the_file(
    work_dir, engine_log, name, kind
):
    DAMAGE[kind](work_dir / "iter_4" / name)
    runner = make(work_dir, resume=True)
    runner._load_checkpoint()
    assert runner.iter == 2  # iter_2 resumed, exactly as when it is named explicitly:
    reference = make(work_dir, resume=work_dir / "iter_2")
    reference._load_checkpoint()
    for key, value in reference._raw_model.state_dict().items():
        assert torch.equal(runner._raw_model.state_dict()[key], value), key
    ema, ema_ref = (r.hooks.get(EMAHook).ema_model.state_dict() for r in (runner, reference))
    assert ema.keys() == ema_ref.keys()
    assert all(torch.equal(v, ema_ref[k]) for k, v in ema.items())
    warnings = [m for m in engine_log if m.startswith("Skipping checkpoint")]
    assert len(warnings) == 1 and str(work_dir / "iter_4" / name) in warnings[0], engine_log
    assert "\n" not in warnings[0]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_a_damaged_checkpoint_named_explicitly_is_refused_naming_the_file(work_dir, name, kind):
    DAMAGE[kind](work_dir / "iter_4" / name)
    runner = make(work_dir, resume=work_dir / "iter_4")
    with pytest.raises(CheckpointError) as err:
        runner._load_checkpoint()
    assert str(work_dir / "iter_4" / name) in str(err.value) and "\n" not in str(err.value)
    assert runner.iter == 0


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_weights_are_refused_by_load_from_and_export(work_dir, tmp_path, kind):
    DAMAGE[kind](work_dir / "iter_4" / "model.safetensors")
    model = DropoutNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=str(work_dir / "iter_4" / "model.safetensors")):
        make(tmp_path / "other", model=model, load_from=work_dir / "iter_4")._load_checkpoint()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match=str(work_dir / "iter_4" / "model.safetensors")):
        export_weights(work_dir / "iter_4", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_a_damaged_manifest_or_an_added_file_is_named(work_dir):
    (work_dir / "iter_4" / "manifest.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(CheckpointError, match=r"iter_4/manifest.json is corrupt"):
        make(work_dir, resume=work_dir / "iter_4")._load_checkpoint()
    shutil.copy(work_dir / "iter_2" / "manifest.json", work_dir / "iter_4" / "manifest.json")
    with pytest.raises(CheckpointError, match=r"iter_4/\w+\.\w+ (has \d+ bytes|differs)"):
        make(work_dir, resume=work_dir / "iter_4")._load_checkpoint()
    shutil.copy(work_dir / "iter_4" / "rng_state_0.json", work_dir / "iter_2" / "rng_state_1.json")
    with pytest.raises(CheckpointError, match=r"iter_2/rng_state_1.json is not listed in"):
        make(work_dir, resume=work_dir / "iter_2")._load_checkpoint()


def test_a_pointer_that_is_not_utf8_or_names_a_missing_folder_falls_back_to_the_scan(
    work_dir, engine_log
):
    (work_dir / "last_checkpoint").write_bytes(b"\xff\xfeiter_4\n")
    assert find_latest_checkpoint(work_dir).name == "iter_4"
    assert (
        engine_log[-1]
        == f"{work_dir / 'last_checkpoint'} is not a UTF-8 folder name; scanning {work_dir} instead"
    )
    (work_dir / "last_checkpoint").write_text("iter_99\n")
    runner = make(work_dir, resume=True)
    runner._load_checkpoint()
    assert runner.iter == 4
    assert any("names 'iter_99', which is not a complete checkpoint" in m for m in engine_log)
    (work_dir / "last_checkpoint").write_bytes(b"iter\x004")
    assert find_latest_checkpoint(work_dir).name == "iter_4"


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train_state", "iter", "4", "train_state.iter is '4' (str); expected an int"),
        ("train_state", "epoch", 1.5, "train_state.epoch is 1.5 (float); expected an int"),
        ("train_state", "should_stop", 0, "train_state.should_stop is 0 (int); expected true or false"),
        ("train_state", "best_scores", {"acc": "high"}, "train_state.best_scores is {'acc': 'high'}"),
        ("train_state", "max_iters", True, "train_state.max_iters is True (bool); expected an int or null"),
        ("meta", "num_processes", "1", "meta.num_processes is '1' (str); expected an int or null"),
        ("meta", "resumable", "yes", "meta.resumable is 'yes' (str); expected true or false"),
    ],
)  # fmt: skip
def test_a_state_file_with_values_of_the_wrong_type_is_one_line(
    work_dir, engine_log, section, key, value, expected
):
    path = work_dir / "iter_4" / "engine_state.json"
    state = json.loads(path.read_text())
    state[section][key] = value
    path.write_text(json.dumps(state))
    write_manifest(path.parent)  # as a tamperer would: the type check must catch it
    with pytest.raises(CheckpointError) as err:
        make(work_dir, resume=path.parent)._load_checkpoint()
    assert str(err.value) == f"{path}: {expected}" or str(err.value).startswith(
        f"{path}: {expected}"
    )
    runner = make(work_dir, resume=True)
    runner._load_checkpoint()
    assert runner.iter == 2
    assert any(m.startswith("Skipping checkpoint iter_4") and expected in m for m in engine_log)


def test_an_older_checkpoint_without_a_manifest_loads_with_one_warning(work_dir, engine_log):
    (work_dir / "iter_4" / "manifest.json").unlink()
    runner = make(work_dir, resume=work_dir / "iter_4")
    runner._load_checkpoint()
    assert runner.iter == 4
    assert [m for m in engine_log if "not verified" in m] == [
        f"{work_dir / 'iter_4'} has no manifest.json (written by an older engine): not verified"
    ]

"""Exact resume: killed processes, crashes mid-save, tampered files, no replay of data."""

import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset

from engine import Accuracy, BaseModel, CheckpointError, CheckpointHook, Hook, Runner
from engine.checkpoint.manifest import write_manifest
from engine.checkpoint.save import find_latest_checkpoint, save_checkpoint
from run_files import without_run_folders

SCRIPT = Path(__file__).with_name("resume_script.py")

# (what is tested, the iteration the process is killed after, the checkpoint it resumes from)
KILLS = {
    "inside the warm-up": (6, "iter_4"),  # LinearLR runs for 6 updates = 12 iterations
    "mid-epoch": (22, "iter_20"),  # epoch 2, batch 6 of 8; resumes at batch 4
    "epoch boundary": (16, "iter_16"),  # the end of epoch 1: resumes before its epoch end
}


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The killed runs, in parallel processes; then one more process that runs the
    uninterrupted run and resumes every killed one (start-up paid once)."""
    root = tmp_path_factory.mktemp("resume")
    procs = {
        case: _start([str(root / case), str(root / "unused.safetensors"), "--kill-at", str(n)])
        for case, (n, _) in KILLS.items()
    }
    save_crash = [str(root / "save"), str(root / "unused.safetensors"), "--kill-in-save", "iter_8"]
    procs["crash in save"] = _start(save_crash)
    killed = {case: (p.wait(timeout=300), p.stdout.read()) for case, p in procs.items()}
    snapshots = {  # what the crash mid-save left, before the resume cleans it
        "save_dir": without_run_folders(p.name for p in (root / "save").iterdir()),
        "save_tmp": sorted(p.name for p in (root / "save" / ".tmp_iter_8").iterdir()),
        "save_latest": find_latest_checkpoint(root / "save"),
    }
    argv = [str(root / "full"), str(root / "full.safetensors")]
    for name in [*KILLS, "save"]:
        argv += ["--then", str(root / name), str(root / f"{name}.safetensors"), "--resume"]
    second = _start(argv)
    resumed = (second.wait(timeout=300), second.stdout.read())
    return root, killed, resumed, snapshots


def _assert_equal_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), f"{name} differs after resuming"


@pytest.mark.parametrize("case", list(KILLS))
def test_a_run_killed_and_resumed_ends_bit_identical(runs, case):
    root, killed, resumed, _ = runs
    assert killed[case][0] == -signal.SIGKILL, killed[case][1]
    code, output = resumed
    assert code == 0, output
    assert f"Resumed from {root / case / KILLS[case][1]}" in output
    _assert_equal_weights(root / "full.safetensors", root / f"{case}.safetensors")


def test_a_crash_while_saving_leaves_the_previous_checkpoint_usable(runs):
    root, killed, resumed, snapshots = runs
    assert killed["crash in save"][0] == -signal.SIGKILL
    # iter_8 was being written (its weights were, nothing else): the pointer still names iter_4
    # .engine_lock: the killed run's lock, which the resumed run takes over (same host, pid gone)
    assert snapshots["save_dir"] == [".engine_lock", ".tmp_iter_8", "iter_4", "last_checkpoint"]
    assert snapshots["save_tmp"] == ["model.safetensors"]
    assert snapshots["save_latest"] == root / "save" / "iter_4"
    code, output = resumed
    assert code == 0, output
    assert f"Resumed from {root / 'save' / 'iter_4'}" in output
    assert f"Taking over {root / 'save' / '.engine_lock'}" in output
    assert not (root / "save" / ".tmp_iter_8").exists() and (root / "save" / "iter_8").is_dir()
    _assert_equal_weights(root / "full.safetensors", root / "save.safetensors")


# -- in-process tests ----------------------------------------------------------------------
class DropoutMLP(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))

    def forward(self, x, y, mode="tensor"):
        logits = self.net(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        return logits, y


def data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return list(zip(x, x[:, :3].argmax(1)))


class Crash(Exception):
    pass


class CrashAfter(Hook):
    priority = "LOWEST"  # after the checkpoint hook

    def __init__(self, n):
        self.n = n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.state.iter == self.n:
            raise Crash


def iteration_run(work_dir, crash_after=None, resume=False):
    torch.manual_seed(0)
    return Runner(
        model=DropoutMLP(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=data(12), batch_size=2, shuffle=True),  # 6 per pass
        val_dataloader=dict(dataset=data(6, 1), batch_size=2, shuffle=True),
        val_evaluator=Accuracy(),
        train_cfg=dict(by_epoch=False, max_iters=20, val_interval=4),
        optim_wrapper=dict(optimizer=dict(type="Adam", lr=0.01), accumulative_counts=2),
        param_scheduler=[dict(type="LinearLR", start_factor=0.2, by_epoch=False, end=5)],
        default_hooks=dict(logger=None, checkpoint=CheckpointHook(interval=4, by_epoch=False)),
        custom_hooks=[CrashAfter(crash_after)] if crash_after else [],
        randomness=dict(seed=1),
        resume=resume,
    )


@pytest.mark.parametrize("crash_after", [10, 13])  # resumes mid-pass at 8, at a pass end at 12
def test_iteration_based_resume_is_exact_with_validation_at_the_checkpoint(tmp_path, crash_after):
    full = iteration_run(tmp_path / "full")
    full.train()
    with pytest.raises(Crash):
        iteration_run(tmp_path / "run", crash_after=crash_after).train()
    resumed = iteration_run(tmp_path / "run", resume=True)
    resumed.train()
    assert resumed.state.iter == 20 and resumed.state.epoch == full.state.epoch
    for (name, a), b in zip(
        full._raw_model.state_dict().items(), resumed._raw_model.state_dict().values()
    ):
        assert torch.equal(a, b), name


class Evil:
    """Unpickling this creates a file: proof that something in the file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _is_pickle_format(path: Path) -> bool:
    head = path.read_bytes()[:4]
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"  # torch zip, raw pickle


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, on the raw payload
@pytest.mark.parametrize("payload", ["torch.save", "pickle.dump"])
def test_tampered_pickle_files_are_refused_and_nothing_in_them_runs(tmp_path, payload):
    small = dict(
        work_dir=tmp_path / "run",
        train_dataloader=dict(dataset=data(8), batch_size=4),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="Adam", lr=0.01)),
        default_hooks=dict(logger=None),
    )
    Runner(model=DropoutMLP(), **small).train()
    folder = tmp_path / "run" / "epoch_1"
    targets = [p for p in folder.iterdir() if _is_pickle_format(p)]
    assert [p.name for p in targets] == ["optimizer.pt"]
    marker = tmp_path / "pwned"
    for path in targets:
        with open(path, "wb") as f:
            if payload == "torch.save":
                torch.save({"state": Evil(str(marker))}, f)
            else:
                pickle.dump({"state": Evil(str(marker))}, f)
    write_manifest(folder)  # a tamperer who also rewrites the manifest: the reader must refuse
    # The payload is live: loading it the unsafe way would create the file.
    with open(targets[0], "rb") as f:
        torch.load(f, weights_only=False) if payload == "torch.save" else pickle.load(f)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError) as err:
        Runner(model=DropoutMLP(), resume=folder, **small).train()
    assert str(targets[0]) in str(err.value) and "nothing in it was run" in str(err.value)
    assert "\n" not in str(err.value)
    assert not marker.exists()


class CountingDataset(Dataset):
    """Records every index it is asked for."""

    def __init__(self, n):
        self.n, self.loaded = n, []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.loaded.append(i)
        return {"x": torch.tensor([1.0])}


class Scale(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x, mode="tensor"):
        return {"loss": (self.w * x).sum()}


class StopAtFirst(Hook):
    priority = "HIGHEST"

    def __init__(self, dataset, started):
        self.dataset, self.started = dataset, started

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seconds = time.perf_counter() - self.started
        self.loaded = list(self.dataset.loaded)
        runner.state.should_stop = True


def resume_at(tmp_path, position, size):
    """Seconds from train() to the first iteration when resuming at batch `position`,
    and the indices loaded by then; also the epoch's order, for comparison."""
    dataset = CountingDataset(size)

    def runner(**kwargs):
        return Runner(
            model=Scale(),
            work_dir=tmp_path / str(position),
            train_dataloader=dict(dataset=dataset, batch_size=1, shuffle=True),
            train_cfg=dict(by_epoch=True, max_epochs=1),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
            default_hooks=dict(logger=None, checkpoint=None),
            randomness=dict(seed=0),
            **kwargs,
        )

    first = runner()
    first.state.iter = first.state.inner_iter = first.state.step = position
    folder = save_checkpoint(first, f"iter_{position}")  # a checkpoint at that position
    resumed = runner(resume=folder)
    start = time.perf_counter()
    hook = StopAtFirst(dataset, start)
    resumed.hooks.add(hook)
    resumed.train()
    resumed.train_dataloader.set_epoch(0)
    order = [i for batch in resumed.train_dataloader.batch_sampler for i in batch]
    return hook.seconds, hook.loaded, order


def test_resume_skips_consumed_batches_without_loading_them(tmp_path):
    timings = {}
    for position, size in ((10, 2000), (1000, 2000), (100_000, 200_000)):
        seconds, loaded, order = resume_at(tmp_path, position, size)
        timings[position] = seconds
        # Only the next batch and the one prefetched behind it, in the epoch's order.
        assert loaded == order[position : position + len(loaded)] and len(loaded) <= 2
    print("resume start-up seconds by position:", timings)
    assert timings[1000] < timings[10] + 0.5

"""Runner and resume paths that once gave wrong numbers without a word (issue 9).

Each test asserts the value that proves the behaviour: the weight that was evaluated, the
parameter a re-planned run ends with (derived by hand), the events a resumed run calls.
"""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from torch.utils.data import DataLoader

from engine import BaseMetric, Hook, Runner
from engine.checkpoint.io import CheckpointError
from engine.hooks.checkpoint_hook import CheckpointHook
from models import ParamModel
from run_files import without_run_folders

XS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
S = sum(XS)  # ParamModel's loss is p * x: one epoch of plain SGD moves p by -lr * S / acc


def samples(xs=XS):
    return [{"x": torch.tensor([x])} for x in xs]


class WeightSeen(BaseMetric):
    """Reports the weight the model predicted with (ParamModel predicts its parameter)."""

    def process(self, data_batch, data_samples):
        self.results.extend(float(p) for p in data_samples)

    def compute_metrics(self, results):
        return {"p": sum(results) / len(results)}


def runner(work_dir, batch_size=2, max_epochs=1, lr=1.0, acc=1, optimizer="SGD", **kwargs):
    cfg = dict(
        model=ParamModel(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=samples(), batch_size=batch_size),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type=optimizer, lr=lr), accumulative_counts=acc),
        val_dataloader=DataLoader(samples([0.0]), batch_size=None),
        val_evaluator=WeightSeen(),
        test_dataloader=DataLoader(samples([0.0]), batch_size=None),
        test_evaluator=WeightSeen(),
        default_hooks=dict(logger=None),
    )
    cfg.update(kwargs)
    return Runner(**cfg)


# -- 1. evaluation of loaded weights --------------------------------------------------
def test_val_evaluates_the_weights_of_load_from(tmp_path):
    runner(tmp_path / "a", lr=0.5).train()  # p: 0 -> -0.5 * S
    for entry in ("val", "test"):
        fresh = runner(tmp_path / "b", load_from=tmp_path / "a" / "epoch_1")
        assert getattr(fresh, entry)()["p"] == pytest.approx(-0.5 * S)


def test_val_and_test_after_train_score_the_trained_weights(tmp_path):
    runner(tmp_path / "a", lr=0.5).train()  # the loaded weights: p = -0.5 * S
    run = runner(tmp_path / "b", lr=0.25, load_from=tmp_path / "a" / "epoch_1")
    run.train()  # from p = -0.5 * S, one more epoch at lr 0.25
    trained = -0.75 * S
    assert run.test()["p"] == pytest.approx(trained)
    assert run.val()["p"] == pytest.approx(trained)
    assert run.model.p.item() == pytest.approx(trained)


def test_resume_true_val_evaluates_the_latest_checkpoint(tmp_path):
    runner(tmp_path, lr=0.5).train()
    assert runner(tmp_path, resume=True).val()["p"] == pytest.approx(-0.5 * S)


# -- 9. resume into other data or settings --------------------------------------------
def test_resume_with_another_batch_size_replans_from_the_epoch_end(tmp_path, caplog):
    runner(tmp_path / "a", batch_size=2, acc=2).train()  # 4 batches, 2 updates, p = -S/2
    resumed = runner(
        tmp_path / "b", batch_size=4, acc=2, max_epochs=3, resume=str(tmp_path / "a" / "epoch_1")
    )
    with caplog.at_level(logging.WARNING, logger="engine"):
        resumed.train()
    # Each epoch of 2 batches is one window of 2: p moves by -S/2 per epoch, never NaN.
    assert resumed.model.p.item() == pytest.approx(-1.5 * S)
    assert (resumed.state.epoch, resumed.state.iter, resumed.state.step) == (3, 6, 3)
    lines = [r.getMessage() for r in caplog.records]
    assert any("4 batches per epoch" in m and "this run has 2" in m for m in lines), lines
    assert any("max_epochs was 1, this run's is 3; this run's wins" in m for m in lines), lines


def test_resume_inside_an_epoch_with_another_batch_size_is_refused(tmp_path):
    every_iter = CheckpointHook(interval=1, by_epoch=False)
    runner(tmp_path / "a", default_hooks=dict(logger=None, checkpoint=every_iter)).train()
    resumed = runner(tmp_path / "b", batch_size=4, resume=str(tmp_path / "a" / "iter_1"))
    with pytest.raises(CheckpointError, match="4 batches per epoch .* this run has 2"):
        resumed.train()
    assert not list((tmp_path / "b").glob("epoch_*"))  # refused before any training


def test_resume_into_another_optimizer_type_is_refused_before_training(tmp_path):
    runner(tmp_path / "a", optimizer="AdamW").train()
    sgd = dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9))
    resumed = runner(tmp_path / "b", max_epochs=2, optim_wrapper=sgd, resume=True,
                     load_from=tmp_path / "a" / "epoch_1")  # fmt: skip
    with pytest.raises(
        CheckpointError, match=r"another optimizer type .*'betas'.*'momentum'.* SGD"
    ):
        resumed.train()
    assert not (tmp_path / "b" / "epoch_2").exists()


def test_changed_lr_and_accumulation_on_resume_are_each_named(tmp_path, caplog):
    runner(tmp_path / "a", lr=0.5).train()
    resumed = runner(tmp_path / "b", lr=0.1, acc=2, max_epochs=2,
                     resume=str(tmp_path / "a" / "epoch_1"))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="engine"):
        resumed.train()
    lines = [r.getMessage() for r in caplog.records]
    assert any("lr was 0.5 in the checkpoint, 0.1 in this run's config; the checkpoint's wins"
               in m for m in lines), lines  # fmt: skip
    assert any("accumulative_counts was 1, this run's is 2; this run's wins" in m for m in lines)
    # The checkpoint's lr won: the second epoch (4 batches, windows of 2) moved p by -0.5*S/2.
    assert resumed.model.p.item() == pytest.approx(-0.5 * S - 0.25 * S)


# -- 10. zero batches -----------------------------------------------------------------
@pytest.mark.parametrize("dataset, loader", [([], {}), (samples()[:3], {"drop_last": True})])
def test_a_loader_without_batches_is_refused_before_training(tmp_path, dataset, loader):
    work_dir = tmp_path / "run"
    run = runner(work_dir, train_dataloader=dict(dataset=dataset, batch_size=4, **loader))
    with pytest.raises(ValueError, match="train_dataloader yields no batches"):
        run.train()
    assert not (work_dir / "last_checkpoint").exists()
    # nothing but the run folder with its log
    assert without_run_folders(p.name for p in work_dir.iterdir() if p.is_dir()) == []


# -- 11. fp16 on a CPU ----------------------------------------------------------------
def test_fp16_on_a_cpu_says_it_runs_in_fp32(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="engine"):
        runner(None, mixed_precision="fp16", default_hooks=dict(logger=None, checkpoint=None))
    lines = [r.getMessage() for r in caplog.records if "fp16" in r.getMessage()]
    assert len(lines) == 1 and "fp32" in lines[0] and "bf16" in lines[0], lines


# -- 12. a missing random-state file --------------------------------------------------
def test_a_checkpoint_without_its_random_state_is_incomplete(tmp_path):
    runner(tmp_path / "a").train()
    folder = tmp_path / "a" / "epoch_1"
    (folder / "rng_state_0.json").unlink()
    resumed = runner(tmp_path / "b", max_epochs=2, resume=str(folder))
    with pytest.raises(CheckpointError, match="incomplete: rng_state_0.json is missing"):
        resumed.train()


# -- 14. resume at an epoch's end -----------------------------------------------------
class EventLog(Hook):
    priority = "HIGHEST"  # before the checkpoint hook: the save ends each epoch's record

    def __init__(self):
        self.events = []

    def _record(self, name, runner):
        self.events.append((name, runner.epoch, runner.iter))

    def before_train_epoch(self, runner):
        self._record("before_train_epoch", runner)

    def after_train_epoch(self, runner):
        self._record("after_train_epoch", runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._record("after_train_iter", runner)

    def before_val(self, runner):
        self._record("before_val", runner)


def test_resume_at_an_epoch_end_continues_with_the_next_epoch(tmp_path):
    log = EventLog()
    whole = runner(tmp_path / "a", max_epochs=3, custom_hooks=[log])
    whole.train()
    resumed_log = EventLog()
    resumed = runner(tmp_path / "b", max_epochs=3, custom_hooks=[resumed_log],
                     resume=str(tmp_path / "a" / "epoch_1"))  # fmt: skip
    resumed.train()
    # The uninterrupted run's record after epoch_1 was saved (and validated) onwards.
    start = log.events.index(("before_train_epoch", 1, 4))
    assert resumed_log.events == log.events[start:]
    assert torch.equal(resumed.model.p, whole.model.p)


def test_resume_from_the_last_epoch_end_trains_and_validates_nothing(tmp_path):
    runner(tmp_path / "a", max_epochs=2).train()
    log = EventLog()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    again = runner(tmp_path / "b", max_epochs=2, custom_hooks=[log], resume=True)
    again.train()
    assert log.events == []


# -- 5. mid-epoch resume with random augmentation in DataLoader workers ----------------
class Jittered(torch.utils.data.Dataset):
    """Each sample gets noise drawn in the worker that loads it (random augmentation)."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return {"x": torch.tensor([float(i)]) + torch.rand(1)}


class Crash(Exception):
    pass


class CrashAt(Hook):
    priority = "LOWEST"  # after the checkpoint hook saved this iteration

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.state.iter == self.at:  # iterations done
            raise Crash


def jitter_run(work_dir, crash_at=None, resume=False):
    torch.manual_seed(0)
    hooks = dict(logger=None, checkpoint=CheckpointHook(interval=5, by_epoch=False))
    return runner(
        work_dir,
        max_epochs=2,
        lr=0.01,
        train_dataloader=dict(dataset=Jittered(), batch_size=2, shuffle=True, num_workers=2),
        default_hooks=hooks,
        custom_hooks=[CrashAt(crash_at)] if crash_at else [],
        randomness=dict(seed=0),
        resume=resume,
    )


def test_resume_inside_an_epoch_is_exact_with_augmenting_workers(tmp_path):
    whole = jitter_run(tmp_path / "whole")
    whole.train()
    with pytest.raises(Crash):
        jitter_run(tmp_path / "cut", crash_at=5).train()  # 8 batches an epoch: inside it
    resumed = jitter_run(tmp_path / "cut", resume=True)
    resumed.train()
    assert resumed.state.iter == 16
    assert torch.equal(resumed.model.p, whole.model.p)
    # The noise matters: a run whose workers draw other numbers ends elsewhere.
    other = jitter_run(tmp_path / "other", resume=False)
    other.randomness, other.state.loader_seed = None, None
    torch.manual_seed(1)
    other.train()
    assert not torch.equal(other.model.p, whole.model.p)

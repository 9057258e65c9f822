"""Checkpoint layout, atomic saves, retention, best checkpoints, load_from, export, errors."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, load_model
from torch import nn

from engine import BaseMetric, BaseModel, CheckpointError, CheckpointHook, Hook, Runner
from engine.__main__ import main as cli
from engine.checkpoint.io import decode, encode, load_tensors, save_tensors
from engine.checkpoint.save import export_weights, find_latest_checkpoint, read_engine_state
from engine.hooks.checkpoint_hook import best_name, infer_rule
from run_files import without_run_folders


class Classifier(BaseModel):
    def __init__(self, hidden=8, classes=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x, y, mode="tensor"):
        logits = self.net(x)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        return logits, y


def data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return list(zip(x, x[:, :3].argmax(1)))


def make_runner(work_dir, model=None, checkpoint=None, **kwargs):
    cfg = dict(
        model=model or Classifier(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=data(), batch_size=4, shuffle=True),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        default_hooks=dict(logger=None, checkpoint=checkpoint or CheckpointHook(interval=1)),
        randomness=dict(seed=0),
    )
    cfg.update(kwargs)
    return Runner(**cfg)


def test_layout_of_a_checkpoint_folder(tmp_path):
    make_runner(tmp_path).train()
    assert (tmp_path / "last_checkpoint").read_text().strip() == "epoch_2"
    assert without_run_folders(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "epoch_1",
        "epoch_2",
    ]
    folder = tmp_path / "epoch_2"
    files = {"model.safetensors", "optimizer.pt", "engine_state.json", "rng_state_0.json"}
    files.add("manifest.json")  # written last: the size and sha256 of each other file
    assert {p.name for p in folder.iterdir()} == files
    state = json.loads((folder / "engine_state.json").read_text())
    assert state["format"] == "engine.checkpoint" and state["version"] == 1
    assert state["train_state"] | {"best_scores": {}} == dict(
        epoch=1, iter=6, step=6, inner_iter=3, max_epochs=2, max_iters=None,
        best_scores={}, should_stop=False, end_of_epoch=True, loader_seed=None,
        windows={"optim_wrapper": 6},
    )  # fmt: skip
    assert state["hooks"]["CheckpointHook"]["kept"] == ["epoch_1", "epoch_2"]
    assert state["meta"]["train_batches"] == 3 and state["meta"]["data_seed"] == 0
    optim = torch.load(folder / "optimizer.pt", weights_only=True)
    assert "accumulation" not in optim and set(optim) == {"state", "param_groups"}
    assert set(load_file(folder / "model.safetensors")) == {
        "net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"
    }  # fmt: skip


class TiedLM(BaseModel):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.head = nn.Linear(4, 5, bias=False)
        self.head.weight = self.embed.weight  # tied: one tensor, two names

    def forward(self, x, y, mode="tensor"):
        logits = self.head(self.embed(x))
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, y)}
        return logits, y


def test_tied_weights_are_stored_once_and_come_back_tied(tmp_path):
    tokens = [(torch.tensor(i % 5), torch.tensor((i + 1) % 5)) for i in range(8)]
    kwargs = dict(train_dataloader=dict(dataset=tokens, batch_size=4), model=TiedLM())
    make_runner(tmp_path, **kwargs).train()
    stored = load_file(tmp_path / "epoch_2" / "model.safetensors")
    assert list(stored) == ["embed.weight"]
    model = TiedLM()
    runner = make_runner(tmp_path, resume=True, **dict(kwargs, model=model))
    runner.train()  # resumes at the end: loads, trains nothing
    assert model.head.weight is model.embed.weight
    assert torch.equal(model.embed.weight, stored["embed.weight"])
    out = export_weights(tmp_path / "epoch_2", tmp_path / "tied.safetensors")
    fresh = TiedLM()
    load_model(fresh, out)  # safetensors' own loader re-ties the weights
    assert torch.equal(fresh.head.weight, stored["embed.weight"])


def test_save_tensors_keeps_distinct_views_of_one_storage(tmp_path):
    base = torch.arange(6.0)
    save_tensors(tmp_path / "t.safetensors", {"a": base, "b": base[2:4], "c": base})
    tensors, _ = load_tensors(tmp_path / "t.safetensors", "test")
    assert torch.equal(tensors["b"], torch.tensor([2.0, 3.0])) and tensors["c"] is tensors["a"]


def test_codec_round_trips_hook_state_and_refuses_other_objects():
    tensors = {}
    state = {"ema": torch.ones(2), 3: (1, "a"), "nested": [{"__tuple__": 1}, None, 2.5]}
    out = decode(json.loads(json.dumps(encode(state, tensors, "hook"))), tensors)
    assert torch.equal(out["ema"], torch.ones(2)) and out[3] == (1, "a")
    assert out["nested"] == [{"__tuple__": 1}, None, 2.5]
    with pytest.raises(TypeError, match=r"hook\.bad is a set"):
        encode({"bad": {1}}, {}, "hook")


class ScriptedMetric(BaseMetric):
    """accuracy/top1 by epoch from a script (so a resumed run sees the same values)."""

    def __init__(self, scores, runner_ref):
        super().__init__()
        self.scores, self.runner_ref = scores, runner_ref

    def process(self, data_batch, data_samples):
        self.results.extend([0] * len(data_samples[1]))

    def compute_metrics(self, results):
        epoch = self.runner_ref[0].state.epoch  # epochs done when validation runs
        return {"accuracy/top1": self.scores[epoch - 1], "loss": -self.scores[epoch - 1]}


class CrashAtEpoch(Hook):
    def __init__(self, epoch):
        self.epoch = epoch

    def before_train_epoch(self, runner):
        if runner.epoch == self.epoch:
            raise KeyboardInterrupt("simulated crash")


SCORES = [50, 70, 60, 80, 80, 75, 90, 85, 85, 88, 89]  # best: epoch 7 (90)


def eleven_epochs(work_dir, crash_at=None, resume=False):
    ref = []
    runner = make_runner(
        work_dir,
        train_cfg=dict(by_epoch=True, max_epochs=11),
        val_dataloader=dict(dataset=data(4), batch_size=4),
        val_evaluator=ScriptedMetric(SCORES, ref),
        checkpoint=CheckpointHook(interval=1, max_keep_ckpts=3, save_best="accuracy/top1"),
        custom_hooks=[CrashAtEpoch(crash_at)] if crash_at else [],
        resume=resume,
    )
    ref.append(runner)
    return runner


def best_epoch(work_dir):
    return read_engine_state(work_dir / "best_accuracy_top1")["train_state"]["epoch"]


def test_retention_and_best_over_11_epochs_with_a_resume_in_the_middle(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        eleven_epochs(tmp_path, crash_at=6).train()
    assert without_run_folders(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "best_accuracy_top1", "epoch_4", "epoch_5", "epoch_6"
    ]  # fmt: skip
    assert best_epoch(tmp_path) == 4  # 80 at epoch 4; the second 80 (epoch 5) does not beat it
    runner = eleven_epochs(tmp_path, resume=True)
    runner.train()
    dirs = without_run_folders(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert dirs == ["best_accuracy_top1", "epoch_10", "epoch_11", "epoch_9"]
    assert best_epoch(tmp_path) == 7 and runner.state.best_scores == {"accuracy/top1": 90}
    best = tmp_path / "best_accuracy_top1"
    assert {p.name for p in best.iterdir()} == {
        "model.safetensors",
        "engine_state.json",
        "manifest.json",
    }
    assert not list(tmp_path.glob(".*_*"))  # no .tmp_/.old_ leftovers


def test_best_by_several_metrics_and_auto(tmp_path):
    ref = []
    hook = CheckpointHook(save_best=["accuracy/top1", "loss"])
    runner = make_runner(
        tmp_path,
        train_cfg=dict(by_epoch=True, max_epochs=4),
        val_dataloader=dict(dataset=data(4), batch_size=4),
        val_evaluator=ScriptedMetric([50, 70, 60, 40], ref),
        checkpoint=hook,
    )
    ref.append(runner)
    runner.train()
    assert hook.rules == ["greater", "less"]
    assert runner.state.best_scores == {"accuracy/top1": 70, "loss": -70}
    assert (tmp_path / "best_loss").is_dir() and (tmp_path / "best_accuracy_top1").is_dir()
    ref.clear()
    auto = CheckpointHook(save_best="auto")  # the first metric validation returns
    runner = make_runner(
        tmp_path / "auto",
        train_cfg=dict(by_epoch=True, max_epochs=2),
        val_dataloader=dict(dataset=data(4), batch_size=4),
        val_evaluator=ScriptedMetric([50, 70], ref),
        checkpoint=auto,
    )
    ref.append(runner)
    runner.train()
    assert (auto.save_best, auto.rules) == (["accuracy/top1"], ["greater"])
    assert best_epoch(tmp_path / "auto") == 2
    assert infer_rule("coco/bbox_mAP") == "greater" and infer_rule("val/error_rate") == "less"
    assert best_name("coco/bbox mAP@50") == "best_coco_bbox_mAP_50"


class IterMetric(BaseMetric):
    def __init__(self, scores, runner_ref):
        super().__init__()
        self.scores, self.runner_ref = scores, runner_ref

    def process(self, data_batch, data_samples):
        self.results.extend([0] * len(data_samples[1]))

    def compute_metrics(self, results):
        return {"acc": self.scores[self.runner_ref[0].state.iter]}


class CrashAt(Hook):
    def __init__(self, n):
        self.n = n

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.n:
            raise KeyboardInterrupt("simulated crash")


def test_a_best_saved_after_the_resumed_checkpoint_still_counts(tmp_path):
    # By iterations, validation at 8 runs after iter_8 is saved, and a resumed run does
    # not repeat it: the best score of iteration 8 is read back from best_acc/.
    def run(**kwargs):
        ref = []
        runner = make_runner(
            tmp_path,
            train_cfg=dict(by_epoch=False, max_iters=12, val_interval=4),
            val_dataloader=dict(dataset=data(4), batch_size=4),
            val_evaluator=IterMetric({4: 50, 8: 90, 12: 60}, ref),
            checkpoint=CheckpointHook(interval=4, by_epoch=False, save_best="acc"),
            **kwargs,
        )
        ref.append(runner)
        return runner

    with pytest.raises(KeyboardInterrupt):
        run(custom_hooks=[CrashAt(8)]).train()  # after iter_8 and its validation
    assert read_engine_state(tmp_path / "iter_8")["train_state"]["best_scores"] == {"acc": 50}
    runner = run(resume=True)
    runner.train()
    assert runner.state.best_scores == {"acc": 90}
    assert read_engine_state(tmp_path / "best_acc")["train_state"]["iter"] == 8


def test_a_save_inside_an_accumulation_window_waits_for_its_end(tmp_path):
    hook = CheckpointHook(interval=3, by_epoch=False)
    make_runner(
        tmp_path,
        train_cfg=dict(by_epoch=False, max_iters=11),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=2),
        checkpoint=hook,
    ).train()
    # due at 3, 6, 9 and the last (11); 3 and 9 fall inside windows [3,4] and [9,10]
    assert hook.kept == ["iter_4", "iter_6", "iter_10", "iter_11"]
    epochs = CheckpointHook(interval=1)
    make_runner(
        tmp_path / "by_epoch",
        train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=2),
        checkpoint=epochs,
    ).train()  # 3 iterations per epoch: epoch 1 ends inside the window [3, 4]
    assert epochs.kept == ["epoch_1", "epoch_2", "epoch_3"]
    iters = [
        read_engine_state(tmp_path / "by_epoch" / n)["train_state"]["iter"] for n in epochs.kept
    ]
    assert iters == [4, 6, 9]


def test_interval_and_save_begin_follow_mmengine(tmp_path):
    hook = CheckpointHook(interval=4, by_epoch=False, save_begin=5, save_last=False)
    make_runner(tmp_path, train_cfg=dict(by_epoch=False, max_iters=14), checkpoint=hook).train()
    assert hook.kept == ["iter_5", "iter_9", "iter_13"]


class StatefulHook(Hook):
    def __init__(self):
        self.value = torch.zeros(3)
        self.calls = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.value += 1
        self.calls += 1

    def state_dict(self):
        return {"value": self.value, "calls": self.calls}

    def load_state_dict(self, state):
        self.value, self.calls = state["value"].clone(), state["calls"]


def test_hook_state_with_tensors_survives_resume(tmp_path):
    make_runner(tmp_path, custom_hooks=[StatefulHook()]).train()
    assert (tmp_path / "epoch_2" / "engine_tensors.safetensors").is_file()
    hook = StatefulHook()
    make_runner(tmp_path, custom_hooks=[hook], resume=tmp_path / "epoch_1").train()
    assert hook.calls == 6 and torch.equal(hook.value, torch.full((3,), 6.0))


def test_latest_checkpoint_pointer_falls_back_to_scanning(tmp_path):
    make_runner(tmp_path).train()
    assert find_latest_checkpoint(tmp_path) == tmp_path / "epoch_2"
    (tmp_path / "last_checkpoint").write_text("epoch_7\n")  # names a folder that is gone
    assert find_latest_checkpoint(tmp_path) == tmp_path / "epoch_2"
    (tmp_path / "last_checkpoint").unlink()
    assert find_latest_checkpoint(tmp_path) == tmp_path / "epoch_2"
    assert find_latest_checkpoint(tmp_path / "nothing_here") is None


def test_resume_true_on_an_empty_work_dir_starts_from_scratch(tmp_path, engine_log):
    runner = make_runner(tmp_path, resume=True)
    runner.train()
    assert any("no checkpoint" in m for m in engine_log) and runner.state.iter == 6


def test_leftovers_of_interrupted_saves_are_cleaned_on_resume(tmp_path, engine_log):
    make_runner(tmp_path).train()
    shutil.copytree(tmp_path / "epoch_1", tmp_path / ".old_epoch_1")  # crashed before rmtree
    shutil.copytree(tmp_path / "epoch_2", tmp_path / ".tmp_epoch_2")
    (tmp_path / "epoch_2").rename(tmp_path / ".old_epoch_2")  # crashed between two renames
    make_runner(tmp_path, resume=True).train()
    assert without_run_folders(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "epoch_1",
        "epoch_2",
    ]
    assert any(f"Resumed from {tmp_path / 'epoch_2'}:" in m for m in engine_log)  # put back


def test_load_from_loads_weights_only_and_reports_keys(tmp_path, engine_log):
    make_runner(tmp_path / "a").train()
    source = tmp_path / "a" / "epoch_2"
    model = Classifier()
    runner = make_runner(tmp_path / "b", model=model, load_from=source)
    runner._load_checkpoint()
    assert torch.equal(model.net[0].weight, load_file(source / "model.safetensors")["net.0.weight"])
    assert runner.state.iter == 0 and runner.optim_wrapper.optimizer.state_dict()["state"] == {}
    other = Classifier(classes=5)  # a new head: shapes differ
    with pytest.raises(CheckpointError, match=r"shape mismatch \[net\.2\.weight \(3, 8\)"):
        make_runner(tmp_path / "c", model=other, load_from=source)._load_checkpoint()
    runner = make_runner(tmp_path / "c", model=other, load_from=dict(path=source, strict=False))
    runner._load_checkpoint()
    line = [m for m in engine_log if "Loaded weights" in m][-1]
    assert "shape mismatch [net.2.weight (3, 8)" in line and "\n" not in line
    assert torch.equal(other.net[0].weight, load_file(source / "model.safetensors")["net.0.weight"])


def test_resume_with_a_different_model_names_the_keys(tmp_path):
    make_runner(tmp_path).train()

    class Renamed(Classifier):
        def __init__(self):
            super().__init__()
            self.extra = nn.Linear(2, 2)

    with pytest.raises(CheckpointError) as err:
        make_runner(tmp_path, model=Renamed(), resume=True).train()
    message = str(err.value)
    assert (
        "model.safetensors does not fit the model: missing keys [extra.weight, extra.bias]"
        in message
    )
    assert "\n" not in message


def test_export_writes_one_safetensors_file_with_the_weights(tmp_path):
    make_runner(tmp_path).train()
    out = export_weights(tmp_path, tmp_path / "export" / "model.safetensors")  # work_dir: latest
    assert out.is_file()
    assert set(load_file(out)) == set(load_file(tmp_path / "epoch_2" / "model.safetensors"))
    cli(
        [
            "export",
            str(tmp_path / "epoch_1"),
            str(tmp_path / "half.safetensors"),
            "--dtype",
            "bfloat16",
        ]
    )
    assert load_file(tmp_path / "half.safetensors")["net.0.weight"].dtype == torch.bfloat16
    model = Classifier()
    make_runner(tmp_path / "b", model=model, load_from=out)._load_checkpoint()
    assert torch.equal(model.net[2].bias, load_file(out)["net.2.bias"])
    with pytest.raises(SystemExit, match="does not exist"):
        cli(["export", str(tmp_path / "missing"), str(tmp_path / "x.safetensors")])


def one_line(err):
    text = str(err.value)
    assert "\n" not in text, text
    return text


def test_bad_checkpoints_give_one_line_errors_naming_the_file(tmp_path):
    make_runner(tmp_path).train()
    folder = tmp_path / "epoch_2"
    with pytest.raises(FileNotFoundError) as err:
        make_runner(tmp_path, resume=tmp_path / "epoch_9").train()
    assert "epoch_9" in one_line(err)

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError) as err:
        make_runner(tmp_path, resume=broken).train()
    # The manifest catches it before any reader runs (tests/test_integrity.py has the rest).
    sizes = f"has {len(data) // 2} bytes, {len(data)} when it was saved"
    assert f"broken/model.safetensors {sizes}" in one_line(err)

    shutil.rmtree(broken)
    shutil.copytree(folder, broken)
    (broken / "engine_state.json").write_text('{"format": "engine.checkpoint", "version": 1,')
    with pytest.raises(CheckpointError) as err:
        make_runner(tmp_path, resume=broken).train()
    assert "broken/engine_state.json has" in one_line(err) and "when it was saved" in one_line(err)
    # Without a manifest (as written by older versions) the readers still refuse each file.
    (broken / "manifest.json").unlink()
    (broken / "engine_state.json").write_text('{"format": "something else"}')
    with pytest.raises(CheckpointError, match="is not an engine checkpoint state"):
        make_runner(tmp_path, resume=broken).train()

    (broken / "optimizer.pt").write_bytes(b"\x00" * 100)  # not a torch file at all
    shutil.copy(folder / "engine_state.json", broken / "engine_state.json")
    with pytest.raises(CheckpointError) as err:
        make_runner(tmp_path, resume=broken).train()
    assert "broken/optimizer.pt was refused by weights-only loading" in one_line(err)
    (broken / "optimizer.pt").write_bytes((folder / "optimizer.pt").read_bytes()[:300])
    with pytest.raises(CheckpointError) as err:
        make_runner(tmp_path, resume=broken).train()
    assert "broken/optimizer.pt is corrupt or truncated" in one_line(err)

    with pytest.raises(CheckpointError, match="holds weights only"):
        save_best_dir = tmp_path / "best"
        shutil.copytree(folder, save_best_dir)
        state = json.loads((save_best_dir / "engine_state.json").read_text())
        state["meta"]["resumable"] = False
        (save_best_dir / "engine_state.json").write_text(json.dumps(state))
        (save_best_dir / "manifest.json").unlink()
        make_runner(tmp_path, resume=save_best_dir).train()

    with pytest.raises(CheckpointError, match="unknown kind"):
        (tmp_path / "weights.npz").write_bytes(b"")
        make_runner(tmp_path, load_from=tmp_path / "weights.npz")._load_checkpoint()


def test_checkpoint_hook_arguments_are_checked():
    with pytest.raises(ValueError, match="rule must be 'greater', 'less' or None"):
        CheckpointHook(save_best="acc", rule="bigger")
    with pytest.raises(ValueError, match="cannot tell whether a greater or a smaller 'sharpness'"):
        CheckpointHook(save_best="sharpness")
    with pytest.raises(ValueError, match="interval must be an int"):
        CheckpointHook(interval=1.5)
    with pytest.raises(ValueError, match="repeats a name or mixes 'auto'"):
        CheckpointHook(save_best=["auto", "acc"])
    with pytest.raises(ValueError, match="checkpoints need a work_dir"):
        make_runner(None).train()
    with pytest.raises(ValueError, match="save_best='top5' is not a validation metric; got"):
        hook = CheckpointHook(save_best="top5")
        hook._training = True
        hook.after_val_epoch(None, {"accuracy/top1": 1.0})

"""Runner accepts MMEngine's arguments: seeding before the model is built, registries,
dict(type=Class), auto_scale_lr, env_cfg, data_preprocessor, from_cfg, dynamic intervals,
test_cfg fp16, and the profiler's trace."""

import json
import logging

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from engine import BaseMetric, BaseModel, Hook, Runner
from engine.config import Config
from engine.hooks import ProfilerHook
from engine.model import BaseDataPreprocessor
from engine.registry import DATASETS, HOOKS, METRICS, MODELS
from models import ParamModel


class Net(BaseModel):
    def __init__(self, width=3, data_preprocessor=None):
        super().__init__(data_preprocessor)
        self.linear = nn.Linear(2, width)

    def forward(self, x, mode="tensor"):
        out = self.linear(x)
        if mode == "loss":
            return {"loss": out.pow(2).mean()}
        return list(out)  # one prediction per sample


class Pairs(Dataset):
    def __init__(self, n=8):
        self.x = torch.arange(2.0 * n).reshape(n, 2) / n

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i]}


class DtypeMetric(BaseMetric):
    def __init__(self, tag="dtype"):
        super().__init__()
        self.tag = tag

    def process(self, data_batch, data_samples):
        self.results.extend(str(s.dtype) for s in data_samples)

    def compute_metrics(self, results):
        return {self.tag: results[0], f"{self.tag}_n": len(results)}


def runner(**kwargs):
    args = dict(
        model=Net(),
        work_dir=None,
        train_dataloader=dict(dataset=Pairs(), batch_size=4),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=None),
    )
    args.update(kwargs)
    return Runner(**args)


@pytest.mark.parametrize("model", [dict(type=Net), Net], ids=["dict", "callable"])
def test_model_built_after_seeding_repeats_its_init(model):
    first = runner(model=model, randomness=dict(seed=0)).model.linear.weight.detach().clone()
    torch.rand(5)  # the global RNG moves on between the runs
    again = runner(model=model, randomness=dict(seed=0)).model.linear.weight
    other = runner(model=model, randomness=dict(seed=1)).model.linear.weight
    assert torch.equal(first, again.detach())
    assert not torch.equal(first, other.detach())


def test_registered_names_resolve_at_the_runner_edge(tmp_path):
    @MODELS.register_module(force=True)
    class RegisteredNet(Net):
        pass

    @DATASETS.register_module(force=True)
    class RegisteredPairs(Pairs):
        pass

    @METRICS.register_module(force=True)
    class RegisteredMetric(DtypeMetric):
        pass

    seen = []

    @HOOKS.register_module(force=True)
    class Count(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            seen.append(batch_idx)

    try:
        r = runner(
            model=dict(type="RegisteredNet", width=4),
            train_dataloader=dict(dataset=dict(type="RegisteredPairs", n=12), batch_size=4),
            val_dataloader=dict(dataset=dict(type=Pairs, n=4), batch_size=2),
            val_evaluator=[dict(type="RegisteredMetric", tag="t"), dict(type=DtypeMetric)],
            custom_hooks=[dict(type="Count")],
        )
        assert isinstance(r.model, RegisteredNet) and r.model.linear.out_features == 4
        assert r.train() == {"t": "torch.float32", "t_n": 4, "dtype": "torch.float32", "dtype_n": 4}
        assert seen == [0, 1, 2]  # 12 samples in batches of 4
    finally:
        for registry, name in ((MODELS, "RegisteredNet"), (DATASETS, "RegisteredPairs"),
                               (METRICS, "RegisteredMetric"), (HOOKS, "Count")):  # fmt: skip
            registry.module_dict.pop(name, None)


def test_unknown_registered_name_is_one_clear_line():
    with pytest.raises(ValueError, match="model type 'Nope' is unknown.*MODELS.register_module"):
        runner(model=dict(type="Nope"))


def test_auto_scale_lr_scales_by_the_global_batch():
    scaled = runner(auto_scale_lr=dict(base_batch_size=8, enable=True))
    assert scaled.optim_wrapper.get_lr() == {"lr": [0.05]}  # batch 4 x 1 process / 8
    off = runner(auto_scale_lr=dict(base_batch_size=8, enable=False))
    assert off.optim_wrapper.get_lr() == {"lr": [0.1]}
    with pytest.raises(ValueError, match="base_batch_size"):
        runner(auto_scale_lr=dict(enable=True))


def test_data_preprocessor_overrides_the_models():
    class Double(BaseDataPreprocessor):
        pass

    built = runner(model=Net(), data_preprocessor=dict(type=Double))
    assert type(built.model.data_preprocessor) is Double
    from_dict = runner(model=dict(type=Net), data_preprocessor=Double())
    assert type(from_dict.model.data_preprocessor) is Double


def test_env_cfg_and_log_level(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    r = runner(env_cfg=dict(cudnn_benchmark=True, dist_cfg=dict(timeout=60)), log_level="WARNING")
    assert torch.backends.cudnn.benchmark is True
    assert logging.getLogger("engine").level == logging.WARNING
    assert r.logger.level == logging.WARNING
    runner(log_level="INFO")
    with pytest.raises(ValueError, match="env_cfg has unknown keys"):
        runner(env_cfg=dict(cudnn=True))


def test_from_cfg_records_identity_and_cfg(caplog):
    cfg = Config(
        dict(
            model=dict(type=Net),
            work_dir=None,
            train_dataloader=dict(dataset=Pairs(), batch_size=4),
            train_cfg=dict(type="IterBasedTrainLoop", max_iters=3),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
            default_hooks=dict(logger=None),
            log_processor=dict(by_epoch=False),
            experiment_name="exp1",
            default_scope="mmdet",
        )
    )
    with caplog.at_level(logging.INFO, logger="engine"):
        r = Runner.from_cfg(cfg)
    assert r.cfg is cfg and r.experiment_name == "exp1" and r.timestamp
    assert (r.rank, r.world_size, r.distributed) == (0, 1, False)
    assert type(r.train_loop).__name__ == "IterBasedTrainLoop"
    # log_processor is used now (LoggerHook asks it for lines); default_scope still is not
    assert "default_scope" in caplog.text and "change nothing" in caplog.text
    assert "log_processor" not in caplog.text
    r.train()
    assert r.iter == 3


def test_dynamic_intervals_change_when_validation_runs():
    epochs = []

    class When(Hook):
        def after_val_epoch(self, runner, metrics=None):
            epochs.append(runner.epoch)

    runner(
        train_cfg=dict(by_epoch=True, max_epochs=5, val_interval=1, dynamic_intervals=[(2, 2)]),
        val_dataloader=dict(dataset=Pairs(2), batch_size=2),
        val_evaluator=DtypeMetric(),
        custom_hooks=[When()],
    ).train()
    assert epochs == [
        1,
        2,
        4,
        5,
    ]  # every epoch until 2 epochs are done, then every 2nd, and the last


def test_test_cfg_fp16_and_loops_run():
    r = runner(
        test_dataloader=dict(dataset=Pairs(4), batch_size=2),
        test_evaluator=DtypeMetric(),
        test_cfg=dict(fp16=True),
        val_dataloader=dict(dataset=Pairs(4), batch_size=2),
        val_evaluator=DtypeMetric(),
    )
    assert r.test_loop.run() == {"dtype": "torch.float16", "dtype_n": 4}
    assert r.val_loop.run() == {"dtype": "torch.float32", "dtype_n": 4}


def test_profiler_hook_writes_a_trace_in_the_run_folder(tmp_path):
    hook = ProfilerHook(by_epoch=False, profile_times=2)
    r = runner(
        work_dir=tmp_path, custom_hooks=[hook], default_hooks=dict(logger=None, checkpoint=None)
    )
    r.train()
    assert r.log_dir.parent == tmp_path  # the run folder, work_dir/<timestamp>/
    trace = json.loads((r.log_dir / "profiler_trace.json").read_text())
    assert hook.trace_path == r.log_dir / "profiler_trace.json"
    assert any(e.get("name") == "aten::linear" for e in trace["traceEvents"])  # the model ran
    with pytest.raises(ValueError, match="at most one epoch"):
        ProfilerHook(by_epoch=True, profile_times=2)


def test_resume_true_with_load_from_resumes_from_load_from(tmp_path):
    def make(work_dir, lr, **kw):
        return Runner(
            model=ParamModel(),
            work_dir=work_dir,
            train_dataloader=torch.utils.data.DataLoader(
                [{"x": torch.tensor([1.0])}, {"x": torch.tensor([2.0])}], batch_size=None
            ),
            train_cfg=dict(by_epoch=True, max_epochs=3),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=lr)),
            default_hooks=dict(logger=None),
            **kw,
        )

    full = make(tmp_path / "a", 0.1)
    full.train()  # p = -0.3 * 3 = -0.9, with epoch_1 holding p = -0.3
    make(tmp_path / "b", 1.0).train()  # work_dir b's latest checkpoint: a finished run
    resumed = make(tmp_path / "b", 0.1, resume=True, load_from=str(tmp_path / "a" / "epoch_1"))
    resumed.train()
    assert resumed.state.iter == 6
    assert resumed.model.p.item() == pytest.approx(full.model.p.item()) == pytest.approx(-0.9)

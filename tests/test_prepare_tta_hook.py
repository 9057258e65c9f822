"""PrepareTTAHook wraps the model in its BaseTTAModel before testing (MMEngine's TTA)."""

import pytest
import torch
from torch.utils.data import DataLoader

from engine import BaseMetric, BaseModel, Runner
from engine.hooks import PrepareTTAHook
from engine.hooks.test_time_aug_hook import build_runner_with_tta
from engine.model import BaseTTAModel


class Identity(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, mode):
        return list(x * self.w.detach())


class MeanTTA(BaseTTAModel):
    def merge_preds(self, data_samples_list):
        return [sum(views) / len(views) for views in data_samples_list]


class Total(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend(float(s) for s in data_samples)

    def compute_metrics(self, results):
        return {"total": sum(results)}


def _views(pipeline=None):
    # each sample: two augmented views, v and 3v
    return [{"x": [torch.tensor(v), torch.tensor(3 * v)]} for v in (1.0, 2.0)]


def test_tta_hook_wraps_the_model_and_merges_views():
    runner = Runner(
        model=Identity(), work_dir=None,
        test_dataloader=DataLoader(_views(), batch_size=2), test_evaluator=Total(),
        custom_hooks=[PrepareTTAHook(tta_cfg=dict(type=MeanTTA))],
    )  # fmt: skip
    assert not isinstance(runner.model, BaseTTAModel)
    # per sample mean of (v, 3v) = 2v: 2 * 1 + 2 * 2 = 6
    assert runner.test() == {"total": pytest.approx(6.0)}
    assert isinstance(runner.model, MeanTTA)
    assert runner.test() == {"total": pytest.approx(6.0)}  # wrapped once, not twice


def test_tta_hook_rejects_a_non_tta_type():
    runner = Runner(
        model=Identity(), work_dir=None,
        test_dataloader=DataLoader(_views(), batch_size=2), test_evaluator=Total(),
        custom_hooks=[PrepareTTAHook(tta_cfg=dict(type=Identity))],
    )  # fmt: skip
    with pytest.raises(TypeError, match="not a BaseTTAModel subclass"):
        runner.test()


def test_build_runner_with_tta_sets_pipeline_and_hook():
    seen = {}

    def dataset(pipeline):
        seen["pipeline"] = pipeline
        return _views()

    cfg = dict(
        model=Identity(), work_dir=None,
        test_dataloader=dict(dataset=dict(type=dataset, pipeline="plain"), batch_size=2),
        test_evaluator=Total(), tta_model=dict(type=MeanTTA), tta_pipeline="views",
    )  # fmt: skip
    with pytest.raises(ValueError, match="tta_pipeline"):
        build_runner_with_tta({k: v for k, v in cfg.items() if k != "tta_pipeline"})
    runner = build_runner_with_tta(cfg)
    assert seen["pipeline"] == "views"
    assert runner.test() == {"total": pytest.approx(6.0)}

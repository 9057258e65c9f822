"""One definition of "best": CheckpointHook(save_best) and EarlyStoppingHook share it."""

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from engine import BaseMetric, Runner
from engine.hooks import CheckpointHook, EarlyStoppingHook
from engine.hooks.best_rule import infer_rule
from models import ParamModel


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("accuracy/top1", "greater"),
        ("top1_err", "less"),  # contains 'top', but is an error
        ("val/loss", "less"),
        ("coco/bbox_mAP_50", "greater"),
        ("mae_err", "less"),
        ("FID", "less"),
        ("confidence_acc", "greater"),  # 'fid' inside a word is no key
        ("mIoU", "greater"),
    ],
)
def test_infer_rule(name, rule):
    assert infer_rule(name) == rule


def test_user_keys_replace_the_defaults():
    assert infer_rule("score", greater_keys=["score"]) == "greater"
    assert CheckpointHook(save_best="x_score", greater_keys="score").rules == ["greater"]
    assert CheckpointHook(save_best="loss_cls", less_keys=["loss_cls"]).rules == ["less"]
    with pytest.raises(ValueError, match="pass rule="):
        infer_rule("something")


def test_err_metric_keeps_the_best_checkpoint_and_early_stopping_agrees(tmp_path):
    # Gradient 1 each epoch with lr 1: p after epoch e is -e. The error is lowest (0.1)
    # after epoch 2, so best_top1_err must hold p = -2 (the old inference kept epoch 1).
    errors = iter([0.5, 0.1, 0.3, 0.4, 0.45])

    class Err(BaseMetric):
        def process(self, data_batch, data_samples):
            self.results.append(0)

        def compute_metrics(self, results):
            return {"top1_err": next(errors)}

    stopper = EarlyStoppingHook("top1_err", patience=2, min_delta=0.0)
    runner = Runner(
        model=ParamModel(),
        work_dir=tmp_path,
        train_dataloader=DataLoader([{"x": torch.tensor([1.0])}], batch_size=None),
        val_dataloader=DataLoader([{"x": torch.tensor([1.0])}], batch_size=None),
        val_evaluator=Err(),
        train_cfg=dict(by_epoch=True, max_epochs=5),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=1.0)),
        default_hooks=dict(logger=None, checkpoint=CheckpointHook(save_best="top1_err")),
        custom_hooks=[stopper],
    )
    runner.train()
    best = load_file(tmp_path / "best_top1_err" / "model.safetensors")
    assert best["p"].item() == -2.0
    assert runner.state.best_scores["top1_err"] == 0.1
    assert stopper.rule == "less" and stopper.best_score == 0.1
    assert runner.state.epoch == 4  # 0.3 and 0.4 do not improve on 0.1: stop after epoch 4

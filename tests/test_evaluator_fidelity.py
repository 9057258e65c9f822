"""engine.evaluator as MMEngine's: BaseMetric arguments, Evaluator.offline_evaluate,
DumpResults, metric dicts with the user's class, the stock metrics, the validation loss."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
import torch
from torch import nn

from engine import BaseModel, Runner
from engine.evaluator import (
    MAE,
    MSE,
    Accuracy,
    BaseMetric,
    DumpResults,
    Evaluator,
    IoUMetric,
    get_metric_value,
)
from run_files import run_file


class Element:
    """A stand-in for a BaseDataElement: attributes, keys(), to_dict()."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def keys(self):
        return list(self.__dict__)

    def to_dict(self):
        return dict(self.__dict__)


class Correct(BaseMetric):
    """Fraction of predictions equal to their label; records what process() saw."""

    default_prefix = "toy"

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.seen = scale, []

    def process(self, data_batch, data_samples):
        self.seen.append((data_batch, data_samples))
        self.results.extend(float(s["pred"] == s["label"]) for s in data_samples)

    def compute_metrics(self, results):
        return {"acc": self.scale * sum(results) / len(results), "size": len(results)}


def test_base_metric_takes_mmengines_arguments(caplog):
    with pytest.raises(ValueError, match="collect_dir could only be configured"):
        Correct(collect_device="gpu", collect_dir="/tmp/x")
    assert Correct(collect_dir="/tmp/x").collect_dir == "/tmp/x"

    class NoPrefix(Correct):
        default_prefix = None

    with caplog.at_level(logging.WARNING, logger="engine"):
        NoPrefix()
    assert "The prefix is not set in metric class NoPrefix" in caplog.text
    evaluator = Evaluator([Correct(), Correct(prefix="b")])
    evaluator.dataset_meta = {"classes": ("cat", "dog")}
    assert [m.dataset_meta for m in evaluator.metrics] == [{"classes": ("cat", "dog")}] * 2


def test_metric_dicts_with_the_users_class_and_stock_names():
    evaluator = Evaluator([dict(type=Correct, scale=2.0), dict(type="Accuracy", topk=(1,))])
    assert isinstance(evaluator.metrics[0], Correct) and evaluator.metrics[0].scale == 2.0
    assert isinstance(evaluator.metrics[1], Accuracy)
    with pytest.raises(TypeError, match="metric Correct rejected its arguments \\['scael'\\]"):
        Evaluator(dict(type=Correct, scael=2.0))
    with pytest.raises(ValueError, match="accepted: a BaseMetric subclass or one of"):
        Evaluator(dict(type="NoSuchMetric"))


def test_offline_evaluate_chunks_and_converts_data_elements():
    preds = [Element(pred=i % 3, label=i % 2) for i in range(10)]
    data = [dict(inputs=torch.tensor([float(i)])) for i in range(10)]
    metric = Correct()
    metrics = Evaluator(metric).offline_evaluate(preds, data, chunk_size=4)
    expected = sum(i % 3 == i % 2 for i in range(10)) / 10
    assert metrics == {"toy/acc": expected, "toy/size": 10}
    # Chunks of 4, 4, 2; each data chunk batched with pseudo_collate; elements as dicts.
    assert [len(s) for _, s in metric.seen] == [4, 4, 2]
    assert metric.seen[0][0]["inputs"][3].item() == 3.0 and isinstance(metric.seen[0][1][0], dict)
    assert Evaluator(Correct()).offline_evaluate(preds)["toy/size"] == 10  # data=None
    with pytest.raises(AssertionError, match="data_samples and data should have the same length"):
        Evaluator(Correct()).offline_evaluate(preds, data[:9])
    with pytest.raises(ValueError, match="multiple evaluation results with the same metric name"):
        Evaluator([Correct(), Correct()]).offline_evaluate(preds)


def test_dump_results_round_trips_through_offline_evaluate(tmp_path):
    with pytest.raises(ValueError, match="The output file must be a pkl file"):
        DumpResults(out_file_path=tmp_path / "results.json")
    path = tmp_path / "out" / "results.pkl"
    preds = [Element(pred=i % 3, label=i % 2) for i in range(7)]
    online = Evaluator([Correct(), DumpResults(path)])
    for start in range(0, 7, 3):
        online.process(preds[start : start + 3])
    metrics = online.evaluate(7)
    with open(path, "rb") as f:
        saved = pickle.load(f)
    assert saved == [p.to_dict() for p in preds]
    assert Evaluator(Correct()).offline_evaluate(saved) == metrics
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_accuracy_never_counts_nan_scores_as_correct(caplog):
    acc = Accuracy(topk=(1, 2))
    nan = float("nan")
    with caplog.at_level(logging.WARNING, logger="engine"):
        acc.process(None, (torch.full((4, 3), nan), torch.tensor([0, 1, 2, 0])))
    assert acc.evaluate(4) == {"accuracy/top1": 0.0, "accuracy/top2": 0.0}
    assert "NaN scores" in caplog.text
    scores = torch.tensor([[0.9, 0.1, 0.0], [nan, 0.8, 0.1], [0.2, 0.3, 0.5], [0.1, nan, 0.2]])
    acc.process(None, (scores, torch.tensor([0, 1, 1, 2])))
    # sample 0 right at top-1; 1 and 3 hold a NaN: wrong; sample 2 ranks its class second
    assert acc.evaluate(4) == {"accuracy/top1": 25.0, "accuracy/top2": 50.0}
    acc.process(None, [dict(pred_score=torch.full((3,), nan), gt_label=torch.tensor(0))])
    assert acc.evaluate(1) == {"accuracy/top1": 0.0, "accuracy/top2": 0.0}


def _confusion_reference(pred, gt, num_classes, ignore_index=255):
    """IoU/Acc from a confusion matrix, the textbook way."""
    keep = gt != ignore_index
    cm = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    for p, g in zip(pred[keep].tolist(), gt[keep].tolist()):
        cm[g, p] += 1
    tp = cm.diag()
    iou = tp / (cm.sum(0) + cm.sum(1) - tp)
    acc = tp / cm.sum(1)
    return float(tp.sum() / cm.sum()), iou, acc


def test_iou_metric_matches_mmseg_keys_and_a_confusion_matrix():
    m = IoUMetric(num_classes=2)
    m.process(None, (torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1], [0, 1]]])))
    # class 0: I=1, U=2 -> 0.5; class 1: I=2, U=3 -> 2/3; aAcc 3/4; Acc 1/2 and 2/2
    assert m.evaluate(1) == {"aAcc": 75.0, "mIoU": 58.33, "mAcc": 75.0}

    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 4, (3, 5, 6), generator=g)
    gts = torch.randint(0, 4, (3, 5, 6), generator=g)
    gts[0, 0, :] = 255  # ignored pixels
    m = IoUMetric(iou_metrics=["mIoU", "mDice"])
    m.dataset_meta = {"classes": ["a", "b", "c", "d"]}
    samples = [
        {"pred_sem_seg": {"data": p[None]}, "gt_sem_seg": {"data": t[None]}}
        for p, t in zip(preds, gts)
    ]
    m.process(None, samples[:2])
    m.process(None, samples[2:])
    got = m.evaluate(3)
    aacc, iou, acc = _confusion_reference(preds.flatten(), gts.flatten(), 4)
    assert got["aAcc"] == round(aacc * 100, 2)
    assert got["mIoU"] == round(float(iou.nanmean()) * 100, 2)
    assert got["mAcc"] == round(float(acc.nanmean()) * 100, 2)
    dice = 2 * iou / (1 + iou)  # Dice = 2 IoU / (1 + IoU), per class
    assert got["mDice"] == pytest.approx(round(float(dice.nanmean()) * 100, 2), abs=0.01)
    with pytest.raises(ValueError, match="needs num_classes"):
        IoUMetric().process(None, samples)


def test_regression_errors_are_means_over_samples():
    pred = torch.tensor([[1.0, 2.0], [0.0, 0.0], [5.0, 5.0]])
    gt = torch.tensor([[2.0, 2.0], [0.0, 3.0], [5.0, 1.0]])
    mae, mse = MAE(), MSE()
    for m in (mae, mse):
        m.process(None, (pred[:2], gt[:2]))
        m.process(dict(targets=gt[2:]), list(pred[2:]))  # targets from the batch
    assert mae.evaluate(3) == {"MAE": pytest.approx((0.5 + 1.5 + 2.0) / 3)}
    assert mse.evaluate(3) == {"MSE": pytest.approx((0.5 + 4.5 + 8.0) / 3)}


def test_get_metric_value():
    metrics = {"a/x": 0, "b/x": 1, "b/y": 2, "z": 3}
    assert get_metric_value("b/x", metrics) == 1 and get_metric_value("y", metrics) == 2
    with pytest.raises(ValueError, match="matches multiple metrics"):
        get_metric_value("x", metrics)
    with pytest.raises(ValueError, match="can not match any metric"):
        get_metric_value("a/y", metrics)


class LossOnVal(BaseModel):
    """val_step returns predictions plus a trailing element with only `loss` (MMEngine's way)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.5]))

    def forward(self, x, y, mode="tensor"):
        pred = self.w * x
        if mode == "loss":
            return {"loss": (pred - y).pow(2).mean()}
        return [dict(pred=p, label=t) for p, t in zip(pred, y)]

    def val_step(self, data):
        x, y = self.data_preprocessor(data, False)
        pred = self.w * x
        loss = dict(loss_mse=(pred - y).pow(2).mean(), aux=(pred - y).abs().mean())
        return [dict(pred=round(float(p)), label=round(float(t))) for p, t in zip(pred, y)] + [
            Element(loss=loss)
        ]


def test_validation_loss_is_logged_when_val_step_returns_losses(tmp_path):
    x = torch.arange(6, dtype=torch.float32)[:, None]
    data = list(zip(x, 2 * x))
    runner = Runner(
        model=LossOnVal(),
        work_dir=tmp_path,
        train_dataloader=dict(dataset=data, batch_size=3),
        val_dataloader=dict(dataset=data, batch_size=4),  # batches of 4 and 2
        val_evaluator=dict(type=Correct),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.0)),  # w stays 0.5
        default_hooks=dict(checkpoint=None),
    )
    metrics = runner.train()
    # Per batch: pred - y = -1.5 x; batch means over x = 0..3 and 4, 5; then mean of batches.
    mse = ((2.25 * (0 + 1 + 4 + 9) / 4) + (2.25 * (16 + 25) / 2)) / 2
    mae = ((1.5 * 6 / 4) + (1.5 * 9 / 2)) / 2
    assert metrics["loss_mse"] == pytest.approx(mse) and metrics["aux"] == pytest.approx(mae)
    assert metrics["val_loss"] == pytest.approx(mse)  # only names containing 'loss' are summed
    assert metrics["toy/size"] == 6  # the metric never saw the loss element
    records = [
        json.loads(line) for line in run_file(tmp_path, "scalars.jsonl").read_text().splitlines()
    ]
    val = [r for r in records if r["mode"] == "val"]
    assert val and val[-1]["val_loss"] == pytest.approx(mse)


class BatchAccuracy(BaseMetric):
    """MMEngine's 15-minute tutorial metric: one result per batch."""

    def process(self, data_batch, data_samples):
        score, gt = data_samples
        self.results.append(
            {"batch_size": len(gt), "correct": (score.argmax(dim=1) == gt).sum().cpu()}
        )

    def compute_metrics(self, results):
        total_correct = sum(item["correct"] for item in results)
        total_size = sum(item["batch_size"] for item in results)
        return dict(accuracy=100 * total_correct / total_size)


def test_a_per_batch_metric_from_the_tutorial_evaluates_without_a_lost_results_warning(recwarn):
    evaluator = Evaluator(dict(type=BatchAccuracy))
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.4]])
    labels = torch.tensor([0, 1, 1, 1, 0])
    for start in range(0, 5, 2):
        evaluator.process((scores[start : start + 2], labels[start : start + 2]))
    assert float(evaluator.evaluate(5)["accuracy"]) == pytest.approx(80.0)
    assert not [w for w in recwarn if "collected" in str(w.message)]

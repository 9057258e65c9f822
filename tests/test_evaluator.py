"""Tests for engine.evaluator: metrics, Evaluator merging, cross-process collection."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.evaluator.collect import collect_results
from engine.evaluator.evaluator import Evaluator
from engine.evaluator.metric import BaseMetric
from engine.evaluator.metrics import Accuracy, build_metric

# 4 samples, 3 classes. True-class ranks: 0, 1, 2, 0 -> top1 50 %, top2 75 %, top3 100 %.
SCORES = torch.tensor(
    [[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]],
)
LABELS = torch.tensor([0, 1, 2, 2])
EXPECTED = {"accuracy/top1": 50.0, "accuracy/top2": 75.0, "accuracy/top3": 100.0}


def _evaluate(data_samples, data_batch=None, topk=(1, 2, 3)):
    metric = Accuracy(topk=topk)
    metric.process(data_batch, data_samples)
    return metric.evaluate(len(LABELS))


def test_accuracy_tuple_of_scores_and_labels():
    assert _evaluate((SCORES, LABELS)) == EXPECTED


def test_accuracy_list_of_dicts_with_scores():
    samples = [
        {"pred_score": s, "gt_label": torch.tensor([int(t)])}
        for s, t in zip(SCORES, LABELS)  # gt_label shaped (1,), as mmpretrain stores it
    ]
    assert _evaluate(samples) == EXPECTED


@pytest.mark.parametrize(
    "data_batch",
    [
        {"inputs": torch.zeros(4, 2), "label": LABELS},
        {"inputs": torch.zeros(4, 2), "labels": LABELS.tolist()},
        {"gt_label": LABELS},
        (torch.zeros(4, 2), LABELS),
        [torch.zeros(4, 2), LABELS],
    ],
)
def test_accuracy_scores_with_labels_from_batch(data_batch):
    assert _evaluate(list(SCORES), data_batch) == EXPECTED
    assert _evaluate(SCORES, data_batch) == EXPECTED  # a (B, C) tensor too


def test_accuracy_predicted_labels():
    preds = torch.tensor([0, 0, 2, 2])  # right, wrong, right, right
    assert _evaluate((preds, LABELS), topk=1) == {"accuracy/top1": 75.0}
    samples = [{"pred_label": int(p), "gt_label": int(t)} for p, t in zip(preds, LABELS)]
    assert _evaluate(samples, topk=1) == {"accuracy/top1": 75.0}
    with pytest.raises(ValueError, match="needs scores"):
        _evaluate((preds, LABELS), topk=(1, 2))


def test_accuracy_ties_go_to_the_lower_index_like_argmax():
    scores = torch.zeros(2, 3)  # an untrained model's constant output must not score 100 %
    metric = Accuracy(topk=(1, 3))
    metric.process(None, (scores, torch.tensor([0, 2])))
    assert metric.evaluate(2) == {"accuracy/top1": 50.0, "accuracy/top3": 100.0}


def test_accuracy_over_batches_and_reset():
    metric = Accuracy(topk=(1, 2))
    metric.process(None, (SCORES[:3], LABELS[:3]))
    metric.process(None, (SCORES[3:], LABELS[3:]))
    assert metric.evaluate(4) == {"accuracy/top1": 50.0, "accuracy/top2": 75.0}
    assert metric.results == []
    metric.process(None, (SCORES[:1], LABELS[:1]))
    assert metric.evaluate(1) == {"accuracy/top1": 100.0, "accuracy/top2": 100.0}


def test_accuracy_topk_beyond_classes_names_both():
    with pytest.raises(ValueError, match=r"topk=\(1, 5\).*3 classes"):
        _evaluate((SCORES, LABELS), topk=(1, 5))
    with pytest.raises(ValueError, match="positive"):
        Accuracy(topk=0)


def test_prefix():
    metric = Accuracy(prefix="val")
    metric.process(None, (SCORES, LABELS))
    assert metric.evaluate(4) == {"val/top1": 50.0}


class Ids(BaseMetric):
    """Results are plain Python objects: dicts holding the sample id."""

    def process(self, data_batch, data_samples):
        self.results.extend({"id": int(i)} for i in data_batch)

    def compute_metrics(self, results):
        return {"ids": [r["id"] for r in results]}


def test_base_metric_with_plain_objects_and_no_prefix():
    metric = Ids()
    metric.process([0, 1, 2], None)
    metric.process([3, 4, 0], None)  # the last batch padded with sample 0
    assert metric.evaluate(5) == {"ids": [0, 1, 2, 3, 4]}


def test_subclass_calling_super_process_records_one_batch():
    class Doubled(Ids):
        def process(self, data_batch, data_samples):
            super().process(data_batch, data_samples)
            super().process(data_batch, data_samples)

    metric = Doubled()
    metric.process([0, 1], None)
    metric.process([2], None)
    assert metric._batch_ends == [4, 6]


def test_collect_results_single_process_truncates_and_warns():
    assert collect_results([1, 2, 3], [2, 3], 2) == [1, 2]
    assert collect_results([1, 2, 3], [], None) == [1, 2, 3]
    with pytest.warns(UserWarning, match="collected 3 results for a dataset of 4"):
        collect_results([1, 2, 3], [3], 4)


def test_evaluator_merges_metrics_and_passes_arguments_in_order():
    evaluator = Evaluator([Accuracy(topk=(1, 2)), Ids(prefix="data")])
    evaluator.process((SCORES, LABELS), data_batch=[10, 11, 12, 13])
    assert evaluator.evaluate(4) == {
        "accuracy/top1": 50.0,
        "accuracy/top2": 75.0,
        "data/ids": [10, 11, 12, 13],
    }


def test_evaluator_accepts_one_metric_or_stock_dicts():
    assert isinstance(Evaluator(Accuracy()).metrics[0], Accuracy)
    evaluator = Evaluator([dict(type="Accuracy", topk=(1, 3), prefix="acc")])
    evaluator.process((SCORES, LABELS))
    assert evaluator.evaluate(4) == {"acc/top1": 50.0, "acc/top3": 100.0}
    with pytest.raises(ValueError, match="Accuracy"):
        build_metric(dict(type="F1Score"))


def test_evaluator_duplicate_key_raises():
    evaluator = Evaluator([Accuracy(), Accuracy()])
    evaluator.process((SCORES, LABELS))
    with pytest.raises(ValueError, match="accuracy/top1"):
        evaluator.evaluate(4)


SCRIPT = Path(__file__).with_name("dist_eval_script.py")


@pytest.mark.parametrize("num_processes", [1, 2, 3])
def test_collection_across_processes_drops_padding(num_processes):
    # One launch checks several batch sizes: each launch costs seconds of process start-up.
    batch_sizes = ["3", "4", "5"]
    if num_processes == 1:
        cmd = [sys.executable, str(SCRIPT), *batch_sizes]
    else:
        launch = ["-m", "accelerate.commands.launch", "--multi_gpu"]
        cmd = [sys.executable, *launch, "--num_processes", str(num_processes), str(SCRIPT)]
        cmd += batch_sizes
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for bs in batch_sizes:
        assert f"RESULTS 13 batch_size={bs} processes={num_processes}" in proc.stdout


def test_accuracy_top_k_as_the_evaluation_tutorial_spells_it():
    # MMEngine's evaluation tutorial builds dict(type='Accuracy', top_k=(1, 5)).
    evaluator = Evaluator(metrics=dict(type="Accuracy", top_k=(1, 2)))
    samples = [dict(pred_score=s, gt_label=y) for s, y in zip(SCORES, LABELS)]
    assert evaluator.offline_evaluate(samples, chunk_size=3) == {
        "accuracy/top1": 50.0,
        "accuracy/top2": 75.0,
    }
    with pytest.raises(ValueError, match="topk or top_k, not both"):
        Accuracy(topk=(1, 2), top_k=(1, 5))

"""Evaluation: `Evaluator`, `BaseMetric`, stock metrics, and cross-process collection."""

from engine.evaluator.collect import collect_results
from engine.evaluator.dump_results import DumpResults
from engine.evaluator.evaluator import Evaluator, get_metric_value
from engine.evaluator.metric import BaseMetric
from engine.evaluator.metrics import Accuracy
from engine.evaluator.regression import MAE, MSE
from engine.evaluator.segmentation import IoUMetric
from engine.evaluator.val_loss import StepLosses

__all__ = [
    "MAE",
    "MSE",
    "Accuracy",
    "BaseMetric",
    "DumpResults",
    "Evaluator",
    "IoUMetric",
    "StepLosses",
    "collect_results",
    "get_metric_value",
]

"""Evaluation: `Evaluator`, `BaseMetric`, stock metrics, and cross-process collection."""

from engine.evaluator.collect import collect_results
from engine.evaluator.evaluator import Evaluator
from engine.evaluator.metric import BaseMetric
from engine.evaluator.metrics import Accuracy

__all__ = ["Accuracy", "BaseMetric", "Evaluator", "collect_results"]

"""Metrics, the Evaluator that runs them, and collection of results across processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.evaluator.metric import BaseMetric
from engine.evaluator.metrics import build_metric


class Evaluator:
    """Runs several metrics over the same predictions and merges their results.

    Args:
        metrics: A metric, a stock-metric dict, or a list of these.

    Example:
        >>> evaluator = Evaluator([Accuracy(), Accuracy(topk=5, prefix='acc5')])
        >>> # per batch: evaluator.process(model_outputs, data_batch)
        >>> # at the end, on every process: metrics = evaluator.evaluate(len(dataset))
    """

    def __init__(self, metrics: BaseMetric | dict | Sequence[BaseMetric | dict]) -> None:
        if isinstance(metrics, (BaseMetric, dict)):
            metrics = [metrics]
        self.metrics = [build_metric(m) for m in metrics]

    @property
    def dataset_meta(self) -> dict | None:
        """Dataset meta info, handed on to every metric."""
        return self.metrics[0].dataset_meta if self.metrics else None

    @dataset_meta.setter
    def dataset_meta(self, meta: dict | None) -> None:
        for m in self.metrics:
            m.dataset_meta = meta

    def process(self, data_samples: Any, data_batch: Any = None) -> None:
        """Pass one batch to every metric (MMEngine's argument order: outputs first)."""
        for m in self.metrics:
            m.process(data_batch, data_samples)

    def evaluate(self, size: int | None) -> dict:
        """Evaluate every metric (see :meth:`BaseMetric.evaluate`) and merge the dicts.

        Raises:
            ValueError: Two metrics produce the same key; give them different prefixes.
        """
        merged: dict = {}
        for m in self.metrics:
            for key, value in m.evaluate(size).items():
                if key in merged:
                    raise ValueError(f"metric key {key!r} produced twice; set distinct prefixes")
                merged[key] = value
        return merged

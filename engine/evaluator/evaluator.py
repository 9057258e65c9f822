"""`Evaluator`: runs several metrics over the same predictions, online or offline."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from engine.dataset.utils import pseudo_collate
from engine.evaluator.metric import BaseMetric
from engine.evaluator.metrics import build_metric


class LengthMismatchError(ValueError, AssertionError):
    """Predictions and data of different lengths (an AssertionError too, as MMEngine raises)."""


def _as_dicts(data_samples: Any) -> Any:
    """Data elements (objects with ``to_dict()``, e.g. ``BaseDataElement``) become dicts
    before metrics see them, as MMEngine's Evaluator does; anything else passes as is."""
    if not isinstance(data_samples, list | tuple) or not data_samples:
        return data_samples
    if not any(
        callable(getattr(s, "to_dict", None)) and not isinstance(s, Mapping) for s in data_samples
    ):
        return data_samples
    return [
        s.to_dict() if callable(getattr(s, "to_dict", None)) and not isinstance(s, Mapping) else s
        for s in data_samples
    ]


class Evaluator:
    """Runs several metrics over the same predictions and merges their results.

    Args:
        metrics: A metric, a metric dict (``dict(type=Accuracy, topk=5)`` or a stock
            name), or a list of these.

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
        data_samples = _as_dicts(data_samples)
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
                    raise ValueError(
                        "There are multiple evaluation results with the same metric name "
                        f"{key!r}; give the metrics distinct prefixes"
                    )
                merged[key] = value
        return merged

    def offline_evaluate(
        self, data_samples: Sequence, data: Sequence | None = None, chunk_size: int = 1
    ) -> dict:
        """Evaluate predictions saved earlier (e.g. by `DumpResults`), `chunk_size` at a time.

        Args:
            data_samples: One prediction per sample.
            data: The matching inputs (one per sample, batched with `pseudo_collate`), or None.
            chunk_size: Samples per ``process`` call.

        Returns:
            The merged metrics, as `evaluate` returns them.

        Raises:
            LengthMismatchError: `data` is given with another length than `data_samples`.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"offline_evaluate chunk_size must be an int >= 1, got {chunk_size!r}")
        if data is not None and len(data) != len(data_samples):
            raise LengthMismatchError(
                "data_samples and data should have the same length, but got data_samples "
                f"length: {len(data_samples)} data length: {len(data)}"
            )
        data_chunks = _chunks(data, chunk_size) if data is not None else itertools.repeat(None)
        for outputs, inputs in zip(_chunks(data_samples, chunk_size), data_chunks):
            self.process(outputs, None if inputs is None else pseudo_collate(inputs))
        return self.evaluate(len(data_samples))


def _chunks(items: Sequence, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def get_metric_value(indicator: str, metrics: dict) -> Any:
    """The value of `indicator` in `metrics`: a full key (``'coco/AP'``) or a key's last
    part (``'AP'``) when exactly one key ends with it.

    Raises:
        ValueError: No key matches, or the short name matches several.
    """
    if "/" in indicator:
        if indicator in metrics:
            return metrics[indicator]
        raise ValueError(f"The indicator {indicator!r} can not match any metric in {list(metrics)}")
    matched = [k for k in metrics if k.split("/")[-1] == indicator]
    if not matched:
        raise ValueError(f"The indicator {indicator!r} can not match any metric in {list(metrics)}")
    if len(matched) > 1:
        raise ValueError(f"The indicator {indicator!r} matches multiple metrics {matched}")
    return metrics[matched[0]]

"""`BaseMetric`: MMEngine's metric interface, collecting results from every process."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from engine.evaluator.collect import _recording_batches, collect_results
from engine.logging.mm_logger import current_logger

logger = logging.getLogger("engine")


class BaseMetric(ABC):
    """MMEngine-compatible metric: ``process`` batches, then ``evaluate`` the dataset.

    Subclasses append small per-sample results (tensors or plain Python objects) to
    ``self.results`` in ``process`` and reduce them in ``compute_metrics``. Each
    ``process`` call is recorded as one batch, so ``evaluate`` can restore dataset order
    across processes and drop the samples the distributed sampler padded with.

    Args:
        collect_device: ``'cpu'`` or ``'gpu'``; kept for MMEngine configs. Results are
            always moved to the CPU and gathered as pickled objects.
        prefix: Put before every key as ``'<prefix>/<key>'``; defaults to the class
            attribute ``default_prefix`` (a warning when neither is set, as MMEngine).
        collect_dir: MMEngine's folder for collecting through files; only with
            ``collect_device='cpu'``. Accepted and unused: results are gathered through
            the process group.

    Attributes:
        dataset_meta: The dataset's meta information (class names, palette...), set by
            the `Evaluator` or the user; ``None`` until then.

    Example:
        >>> class MeanError(BaseMetric):
        ...     def process(self, data_batch, data_samples):
        ...         self.results.extend(abs(p - t) for p, t in data_samples)
        ...     def compute_metrics(self, results):
        ...         return {'mae': sum(results) / len(results)}
        >>> m = MeanError(prefix='val')
        >>> m.process(None, [(1.0, 2.0), (3.0, 3.0)])
        >>> m.evaluate(2)
        {'val/mae': 0.5}
    """

    default_prefix: str | None = None

    def __init__(
        self, collect_device: str = "cpu", prefix: str | None = None, collect_dir: str | None = None
    ) -> None:
        if collect_device not in ("cpu", "gpu"):
            raise ValueError(f"collect_device must be 'cpu' or 'gpu', got {collect_device!r}")
        if collect_dir is not None and collect_device != "cpu":
            raise ValueError(
                f"collect_dir could only be configured when collect_device='cpu', got {collect_device!r}"
            )
        self.collect_device = collect_device
        self.collect_dir = collect_dir
        self.prefix = prefix or self.default_prefix
        if self.prefix is None:
            current_logger().warning(
                "The prefix is not set in metric class %s.", type(self).__name__
            )
        self.dataset_meta: dict | None = None
        self.results: list[Any] = []
        self._batch_ends: list[int] = []  # len(self.results) after each process() call

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Batch boundaries are recorded around the subclass's own process(), so a metric
        # ported from MMEngine needs no change and works with or without an Evaluator.
        super().__init_subclass__(**kwargs)
        if "process" in cls.__dict__:
            cls.process = _recording_batches(cls.__dict__["process"])

    @abstractmethod
    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Append one batch's per-sample results (``data_samples``: ``val_step``'s output)."""

    @abstractmethod
    def compute_metrics(self, results: list) -> dict:
        """Reduce the results of the whole dataset, in dataset order, to a metrics dict."""

    def evaluate(self, size: int | None) -> dict:
        """Gather the results of all processes and compute the metrics, then reset.

        Every process must call this (it communicates); all return the same dict.

        Args:
            size: Number of samples in the dataset; the padded duplicates beyond it are
                dropped. ``None`` keeps every gathered result.

        Returns:
            The metrics, keys prefixed ``'<prefix>/'`` when a prefix is set.
        """
        if not self.results:
            current_logger().warning(  # MMEngine warns on its logger, not warnings.warn
                "%s.results is empty: did process() append?", type(self).__name__
            )
        results = collect_results(self.results, self._batch_ends, size)
        metrics = self.compute_metrics(results)
        if not isinstance(metrics, dict):
            raise TypeError(
                f"{type(self).__name__}.compute_metrics returned a {type(metrics).__name__}; it "
                "must return a dict of metric name -> value, e.g. {'accuracy': 0.9}"
            )
        self.results.clear()
        self._batch_ends.clear()
        if self.prefix:
            metrics = {f"{self.prefix}/{k}": v for k, v in metrics.items()}
        return metrics

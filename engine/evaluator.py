"""Metrics, the Evaluator that runs them, and collection of results across processes."""

from __future__ import annotations

import functools
import itertools
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from accelerate.utils import send_to_device


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
            attribute ``default_prefix``.

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

    def __init__(self, collect_device: str = "cpu", prefix: str | None = None) -> None:
        if collect_device not in ("cpu", "gpu"):
            raise ValueError(f"collect_device must be 'cpu' or 'gpu', got {collect_device!r}")
        self.collect_device = collect_device
        self.prefix = prefix or self.default_prefix
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
            warnings.warn(
                f"{type(self).__name__}.results is empty: did process() append?", stacklevel=2
            )
        results = collect_results(self.results, self._batch_ends, size)
        metrics = self.compute_metrics(results)
        self.results.clear()
        self._batch_ends.clear()
        if self.prefix:
            metrics = {f"{self.prefix}/{k}": v for k, v in metrics.items()}
        return metrics


def _recording_batches(process):
    @functools.wraps(process)
    def wrapper(self, *args, **kwargs):
        if self.__dict__.get("_in_process"):  # super().process() of a subclass: same batch
            return process(self, *args, **kwargs)
        self._in_process = True
        try:
            return process(self, *args, **kwargs)
        finally:
            self._in_process = False
            self._batch_ends.append(len(self.results))

    return wrapper


def collect_results(results: list, batch_ends: Sequence[int], size: int | None) -> list:
    """Gather per-batch results from every process in dataset order; truncate to ``size``.

    Args:
        results: This process's results, all batches concatenated.
        batch_ends: ``len(results)`` after each batch.
        size: Number of real samples, or ``None`` to keep everything.

    Returns:
        The results of the whole dataset on every process, tensors on the CPU.
    """
    # Assumes Accelerate's sharding of a map-style dataset (BatchSamplerShard): with W
    # processes, process r gets batches r, r + W, r + 2W, ... and (even_batches=True) pads
    # the end by wrapping round to the dataset's start. Interleaving batches by index
    # (rank 0 batch 0, rank 1 batch 0, rank 0 batch 1, ...) restores dataset order, so
    # the padding lands after sample size - 1 and truncation drops exactly it. The order
    # also holds for split_batches=True and IterableDatasetShard (process r holds slice r
    # of each global batch), not for torch's DistributedSampler, which deals out samples.
    bounds = [0, *(e for e in batch_ends if e <= len(results))]
    if bounds[-1] != len(results):  # results appended outside process(): one more batch
        bounds.append(len(results))
    chunks = [send_to_device(results[a:b], "cpu") for a, b in zip(bounds, bounds[1:])]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        per_rank: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(per_rank, chunks)
        # zip_longest: with even_batches=False the last processes may have one batch fewer.
        chunks = [c for batch in itertools.zip_longest(*per_rank) for c in batch if c is not None]
    flat = [r for chunk in chunks for r in chunk]
    if size is not None and len(flat) < size:
        warnings.warn(
            f"collected {len(flat)} results for a dataset of {size} samples", stacklevel=3
        )
    return flat if size is None else flat[:size]


def _labels_from(data_batch: Any) -> Any:
    if isinstance(data_batch, dict):
        for key in ("gt_label", "labels", "label"):
            if key in data_batch:
                return data_batch[key]
        raise ValueError(f"data_batch has no label key; keys: {list(data_batch)}")
    if isinstance(data_batch, (list, tuple)) and data_batch:
        return data_batch[-1]
    raise TypeError(f"cannot find labels in a data_batch of type {type(data_batch).__name__}")


class Accuracy(BaseMetric):
    """Top-k classification accuracy in percent, as mmpretrain reports it.

    ``data_samples`` may be (a) a list of dicts with ``'gt_label'`` and ``'pred_score'``
    (a C-vector) or ``'pred_label'``; (b) a tuple ``(scores_or_pred_labels, gt_labels)``
    of tensors; (c) per-sample score vectors (a list of C-vectors or a ``(B, C)`` tensor),
    the labels then taken from ``data_batch`` (``'gt_label'``/``'labels'``/``'label'``
    of a dict, or the last element of a tuple/list). Ties in the scores go to the lower
    class index, as ``argmax`` does. Predicted labels support only ``topk=(1,)``.

    Args:
        topk: One k or several; the keys are ``'top<k>'``.
        collect_device: See :class:`BaseMetric`.
        prefix: Defaults to ``'accuracy'``.

    Example:
        >>> acc = Accuracy(topk=(1, 2))
        >>> acc.process(None, (torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])))
        >>> acc.evaluate(2)
        {'accuracy/top1': 50.0, 'accuracy/top2': 100.0}
    """

    default_prefix = "accuracy"

    def __init__(
        self,
        topk: int | Sequence[int] = (1,),
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk,) if isinstance(topk, int) else tuple(topk)
        if not self.topk or any(not isinstance(k, int) or k < 1 for k in self.topk):
            raise ValueError(f"topk must be positive ints, got {topk!r}")

    def process(self, data_batch: Any, data_samples: Any) -> None:
        """Store, per sample, the rank of the true class (0 = top-1): a small int."""
        if (
            isinstance(data_samples, (list, tuple))
            and data_samples
            and isinstance(data_samples[0], dict)
        ):
            key = "pred_score" if "pred_score" in data_samples[0] else "pred_label"
            preds = [torch.as_tensor(s[key]) for s in data_samples]
            if key == "pred_label":
                preds = torch.cat([p.reshape(-1) for p in preds])
            labels = [s["gt_label"] for s in data_samples]
        elif isinstance(data_samples, tuple) and len(data_samples) == 2:
            preds, labels = data_samples
        else:
            preds, labels = data_samples, _labels_from(data_batch)
        if isinstance(preds, (list, tuple)):
            preds = torch.stack([torch.as_tensor(p) for p in preds])
        if isinstance(labels, (list, tuple)):
            labels = torch.cat([torch.as_tensor(t).reshape(-1) for t in labels])
        labels = torch.as_tensor(labels).reshape(-1).long().to(preds.device)
        if preds.ndim == 1:  # predicted labels: right or wrong, nothing to rank
            if max(self.topk) > 1:
                raise ValueError(f"Accuracy topk={self.topk} needs scores, got predicted labels")
            ranks = (preds != labels).long()
        else:
            num_classes = preds.shape[-1]
            if max(self.topk) > num_classes:
                raise ValueError(
                    f"Accuracy topk={self.topk} exceeds the {num_classes} classes of the scores"
                )
            true = preds.gather(1, labels[:, None])
            earlier = torch.arange(num_classes, device=preds.device) < labels[:, None]
            ranks = (preds > true).sum(1) + ((preds == true) & earlier).sum(1)
        self.results.extend(ranks.tolist())  # one host sync per batch, not per sample

    def compute_metrics(self, results: list) -> dict:
        """Percent of samples whose true class ranks within the top k, for each k."""
        n = max(len(results), 1)
        return {f"top{k}": 100.0 * sum(r < k for r in results) / n for k in self.topk}


_STOCK_METRICS = {"Accuracy": Accuracy}


def build_metric(cfg: BaseMetric | dict) -> BaseMetric:
    """Build a stock metric from ``dict(type='Accuracy', ...)``; a built metric passes."""
    if isinstance(cfg, BaseMetric):
        return cfg
    if not isinstance(cfg, dict) or cfg.get("type") not in _STOCK_METRICS:
        raise ValueError(
            f"cannot build a metric from {cfg!r}; accepted: a BaseMetric or a dict with "
            f"type in {sorted(_STOCK_METRICS)}"
        )
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    return _STOCK_METRICS[cfg["type"]](**kwargs)


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

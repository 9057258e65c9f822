"""Stock metrics: `Accuracy` (top-k), and building any metric from its dict."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from engine.evaluator.dump_results import DumpResults
from engine.evaluator.metric import BaseMetric
from engine.evaluator.regression import MAE, MSE
from engine.evaluator.segmentation import IoUMetric

try:  # metrics that ported code registers by name (@METRICS.register_module())
    from engine.registry import METRICS as _REGISTERED_METRICS
except ImportError:  # a tree without engine.registry: classes and stock names only
    _REGISTERED_METRICS = None

logger = logging.getLogger("engine")


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
        top_k: The same, spelt as MMEngine's evaluation tutorial writes it
            (``dict(type='Accuracy', top_k=(1, 5))``); give one of the two.
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
        top_k: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if top_k is not None:
            if topk != (1,):
                raise ValueError(f"give topk or top_k, not both (got {topk!r} and {top_k!r})")
            topk = top_k
        self.topk = (topk,) if isinstance(topk, int) else tuple(topk)
        self._warned_nan = False
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
            # NaN compares false with everything, so a NaN score would rank first: a
            # prediction with any NaN score is ranked last instead, wrong at every k.
            nan = preds.isnan().any(1)
            ranks = torch.where(nan, torch.full_like(ranks, num_classes), ranks)
            if not self._warned_nan and bool(nan.any()):
                self._warned_nan = True
                logger.warning(
                    "Accuracy: %d prediction(s) with NaN scores in a batch; counted as wrong",
                    int(nan.sum()),
                )
        self.results.extend(ranks.tolist())  # one host sync per batch, not per sample

    def compute_metrics(self, results: list) -> dict:
        """Percent of samples whose true class ranks within the top k, for each k."""
        n = max(len(results), 1)
        return {f"top{k}": 100.0 * sum(r < k for r in results) / n for k in self.topk}


_STOCK_METRICS = {
    "Accuracy": Accuracy,
    "DumpResults": DumpResults,
    "IoUMetric": IoUMetric,
    "MAE": MAE,
    "MSE": MSE,
}


def build_metric(cfg: BaseMetric | dict) -> BaseMetric:
    """A metric from ``dict(type=SomeMetricClass, ...)``, a stock name
    (``dict(type='Accuracy', topk=5)``) or a name registered in ``engine.registry.METRICS``;
    a built metric passes.

    Raises:
        TypeError/ValueError: one line naming what was wrong and what is accepted.
    """
    if isinstance(cfg, BaseMetric):
        return cfg
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ValueError(
            f"cannot build a metric from {cfg!r}; accepted: a BaseMetric or dict(type=..., ...)"
        )
    kind = cfg["type"]
    cls = kind
    if isinstance(kind, str):
        cls = _STOCK_METRICS.get(kind)
        if cls is None and _REGISTERED_METRICS is not None:
            cls = _REGISTERED_METRICS.get(kind)
    if not (isinstance(cls, type) and issubclass(cls, BaseMetric)):
        raise ValueError(
            f"cannot build a metric from {cfg!r}; accepted: a BaseMetric subclass or "
            f"one of {sorted(_STOCK_METRICS)} as type"
        )
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    try:
        return cls(**kwargs)
    except TypeError as err:  # a misspelt argument: say which metric
        raise TypeError(
            f"metric {cls.__name__} rejected its arguments {sorted(kwargs)}: {err}"
        ) from None

"""Regression errors: `MAE` and `MSE`, with the keys mmagic reports (``'MAE'``, ``'MSE'``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from engine.evaluator.metric import BaseMetric


def _targets_from(data_batch: Any, gt_key: str) -> Any:
    if isinstance(data_batch, Mapping):
        for key in (gt_key, "targets", "target", "gt", "labels", "label"):
            if key in data_batch:
                return data_batch[key]
        raise ValueError(
            f"data_batch has no target key ({gt_key!r}, 'targets'...); keys: {list(data_batch)}"
        )
    if isinstance(data_batch, (list, tuple)) and data_batch:
        return data_batch[-1]
    raise TypeError(f"cannot find targets in a data_batch of type {type(data_batch).__name__}")


class _SampleError(BaseMetric):
    """Mean over samples of each sample's mean elementwise error ``_error(pred - gt)``."""

    default_prefix = ""  # mmagic's keys carry no prefix
    metric = ""

    def __init__(
        self,
        gt_key: str = "gt",
        pred_key: str = "pred",
        collect_device: str = "cpu",
        prefix: str | None = None,
        collect_dir: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.gt_key, self.pred_key = gt_key, pred_key

    @staticmethod
    def _error(diff: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def process(self, data_batch: Any, data_samples: Any) -> None:
        """Store each sample's mean error (a float)."""
        if isinstance(data_samples, tuple) and len(data_samples) == 2:
            preds, gts = data_samples
        elif (
            isinstance(data_samples, (list, tuple))
            and data_samples
            and isinstance(data_samples[0], Mapping)
        ):
            preds = [s[self.pred_key] for s in data_samples]
            gts = [s[self.gt_key] for s in data_samples]
        else:
            preds, gts = data_samples, _targets_from(data_batch, self.gt_key)
        preds = [torch.as_tensor(p) for p in preds]
        gts = [torch.as_tensor(g) for g in gts]
        if len(preds) != len(gts):
            raise ValueError(f"{self.metric}: {len(preds)} predictions for {len(gts)} targets")
        errors = [
            self._error(p.double() - g.to(p.device).double().reshape(p.shape)).mean()
            for p, g in zip(preds, gts)
        ]
        self.results.extend(torch.stack(errors).tolist())  # one host sync per batch

    def compute_metrics(self, results: list) -> dict:
        return {self.metric: sum(results) / max(len(results), 1)}


class MAE(_SampleError):
    """Mean absolute error, ``{'MAE': ...}``.

    ``data_samples`` may be a tuple ``(pred, gt)`` of batched tensors, dicts with
    `pred_key`/`gt_key`, or per-sample predictions whose targets are in ``data_batch``
    (key `gt_key` or ``'targets'``, or the last element of a tuple).

    Example:
        >>> m = MAE()
        >>> m.process(None, (torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [3.0]])))
        >>> m.evaluate(2)
        {'MAE': 0.5}
    """

    metric = "MAE"

    @staticmethod
    def _error(diff: torch.Tensor) -> torch.Tensor:
        return diff.abs()


class MSE(_SampleError):
    """Mean squared error, ``{'MSE': ...}``; inputs as `MAE`."""

    metric = "MSE"

    @staticmethod
    def _error(diff: torch.Tensor) -> torch.Tensor:
        return diff.pow(2)

"""`IoUMetric`: semantic segmentation scores (aAcc, mIoU, mAcc, mDice, mFscore) as mmseg reports them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from engine.evaluator.metric import BaseMetric

_SUMMARIES = ("mIoU", "mDice", "mFscore")


def _seg_data(value: Any) -> torch.Tensor:
    """A label map from mmseg's ``{'data': tensor}`` (``PixelData.to_dict()``) or a tensor."""
    if isinstance(value, Mapping):
        value = value["data"]
    return torch.as_tensor(value)


class IoUMetric(BaseMetric):
    """Per-class intersection over union and accuracy, accumulated over the dataset.

    Each sample adds its per-class pixel counts (intersection, union, predicted, labelled);
    ``compute_metrics`` divides the dataset totals, so large and small images weigh by
    their pixels. Results are percentages rounded to 2 decimals with mmseg's keys:
    ``aAcc`` (all pixels) and, per entry of `iou_metrics`, ``mIoU`` + ``mAcc``, ``mDice`` +
    ``mAcc``, ``mFscore`` + ``mPrecision`` + ``mRecall`` (means over classes, ignoring
    classes absent from both prediction and ground truth, which give NaN).

    ``data_samples`` may be (a) mmseg's dicts with ``'pred_sem_seg'`` and ``'gt_sem_seg'``
    (each ``{'data': (1, H, W)}`` or a tensor), or (b) a tuple ``(pred, gt)`` of tensors:
    ``pred`` label maps ``(B, H, W)`` or logits ``(B, C, H, W)``, ``gt`` ``(B, H, W)``.

    Args:
        num_classes: Number of classes; default ``len(dataset_meta['classes'])``.
        ignore_index: Ground-truth label excluded from every count.
        iou_metrics: Any of ``'mIoU'``, ``'mDice'``, ``'mFscore'``.
        nan_to_num: Replace NaN per-class scores by this value before averaging.
        beta: The F-score's beta.
        collect_device, prefix, collect_dir: See `BaseMetric`.

    Example:
        >>> m = IoUMetric(num_classes=2)
        >>> m.process(None, (torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1], [0, 1]]])))
        >>> m.evaluate(1)['mIoU']
        58.33
    """

    default_prefix = ""  # mmseg's keys carry no prefix

    def __init__(
        self,
        num_classes: int | None = None,
        ignore_index: int = 255,
        iou_metrics: Sequence[str] = ("mIoU",),
        nan_to_num: float | None = None,
        beta: float = 1,
        collect_device: str = "cpu",
        prefix: str | None = None,
        collect_dir: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        iou_metrics = [iou_metrics] if isinstance(iou_metrics, str) else list(iou_metrics)
        if not iou_metrics or not set(iou_metrics) <= set(_SUMMARIES):
            raise ValueError(f"iou_metrics {iou_metrics!r} must be a subset of {list(_SUMMARIES)}")
        if num_classes is not None and (isinstance(num_classes, bool) or num_classes < 1):
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.iou_metrics = iou_metrics
        self.nan_to_num = nan_to_num
        self.beta = beta

    def _classes(self) -> int:
        if self.num_classes is not None:
            return self.num_classes
        classes = (self.dataset_meta or {}).get("classes")
        if not classes:
            raise ValueError("IoUMetric needs num_classes=... or dataset_meta={'classes': [...]}")
        return len(classes)

    def process(self, data_batch: Any, data_samples: Any) -> None:
        """Store each sample's per-class counts: a (4, C) tensor of pixels."""
        if isinstance(data_samples, tuple) and len(data_samples) == 2:
            preds, gts = data_samples
            preds, gts = torch.as_tensor(preds), torch.as_tensor(gts)
            if preds.ndim == gts.ndim + 1:  # logits: the class axis after the batch
                preds = preds.argmax(1)
            pairs = list(zip(preds, gts))
        else:
            pairs = [
                (_seg_data(s["pred_sem_seg"]), _seg_data(s["gt_sem_seg"])) for s in data_samples
            ]
        num_classes = self._classes()
        for pred, gt in pairs:
            pred, gt = pred.reshape(-1).long(), gt.to(pred.device).reshape(-1).long()
            if pred.shape != gt.shape:
                raise ValueError(
                    f"IoUMetric: prediction has {pred.numel()} pixels, ground truth {gt.numel()}"
                )
            keep = gt != self.ignore_index
            pred, gt = pred[keep], gt[keep]
            if gt.numel() and (int(gt.max()) >= num_classes or int(gt.min()) < 0):
                raise ValueError(f"IoUMetric: a ground-truth label lies outside [0, {num_classes})")
            hit = pred[pred == gt]
            counts = [
                torch.bincount(v, minlength=num_classes)[:num_classes] for v in (hit, pred, gt)
            ]
            inter, area_pred, area_gt = counts
            self.results.append(
                torch.stack([inter, area_pred + area_gt - inter, area_pred, area_gt]).cpu()
            )

    def compute_metrics(self, results: list) -> dict:
        """aAcc and the requested summaries, in percent, rounded to 2 decimals."""
        inter, union, area_pred, area_gt = torch.stack(results).sum(0).double()
        per_class = {"Acc": inter / area_gt}
        if "mIoU" in self.iou_metrics:
            per_class["IoU"] = inter / union
        if "mDice" in self.iou_metrics:
            per_class["Dice"] = 2 * inter / (area_pred + area_gt)
        if "mFscore" in self.iou_metrics:
            precision, recall = inter / area_pred, inter / area_gt
            b2 = self.beta**2
            per_class.update(
                Fscore=(1 + b2) * precision * recall / (b2 * precision + recall),
                Precision=precision,
                Recall=recall,
            )
        out = {"aAcc": round(float(inter.sum() / area_gt.sum()) * 100, 2)}
        order = {
            "mIoU": ("IoU", "Acc"),
            "mDice": ("Dice", "Acc"),
            "mFscore": ("Fscore", "Precision", "Recall"),
        }
        for summary in self.iou_metrics:
            for name in order[summary]:
                values = per_class[name]
                if self.nan_to_num is not None:
                    values = torch.nan_to_num(values, nan=self.nan_to_num)
                out[f"m{name}"] = round(float(values.nanmean()) * 100, 2)
        return out

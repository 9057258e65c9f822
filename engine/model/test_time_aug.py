"""`BaseTTAModel`: test-time augmentation: run a model on every augmented view, merge per sample.

The test loader yields, for each sample, a list of augmented views (MMEngine's TTA pipelines
do this); collated with ``pseudo_collate`` a batch is ``{'inputs': [view0_batch, view1_batch,
...], 'data_samples': [...]}`` (or a tuple of such lists). `test_step` runs the wrapped model's
``test_step`` on each view batch and hands `merge_preds` one list of predictions per sample.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from engine.model.base_model import BaseModel
from engine.registry import MODELS

__all__ = ["BaseTTAModel"]


class BaseTTAModel(BaseModel):
    """Wrap a model for test-time augmentation; subclasses implement `merge_preds`.

    Args:
        module: the model (anything with ``test_step``), or ``dict(type=ModelClass, ...)``.
        data_preprocessor: with a dict `module`, passed to it as its ``data_preprocessor``.

    Example:
        >>> class MeanTTA(BaseTTAModel):
        ...     def merge_preds(self, data_samples_list):
        ...         return [sum(views) / len(views) for views in data_samples_list]
        >>> MeanTTA(model).test_step({'inputs': [batch, flipped_batch]})
    """

    def __init__(self, module: nn.Module | dict, data_preprocessor: Any = None) -> None:
        super().__init__()
        if isinstance(module, dict):
            cfg = dict(module)
            kind = cfg.pop("type", None)
            if isinstance(kind, str) and MODELS.get(kind) is not None:
                kind = MODELS.get(kind)  # a name ported code registered with @MODELS
            if not callable(kind):
                raise TypeError(
                    f"BaseTTAModel builds a dict module from a class or a name registered in "
                    f"engine.registry.MODELS in 'type', got {kind!r}; pass the built model instead"
                )
            if data_preprocessor is not None:
                cfg["data_preprocessor"] = data_preprocessor
            module = kind(**cfg)
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"BaseTTAModel module must be an nn.Module or a dict, got {type(module).__name__}"
            )
        if not callable(getattr(module, "test_step", None)):
            raise TypeError(f"{type(module).__name__} has no test_step for BaseTTAModel to call")
        self.module = module

    def merge_preds(self, data_samples_list: list[list[Any]]) -> list[Any]:
        """One merged prediction per sample from its list of per-view predictions."""
        raise NotImplementedError(f"{type(self).__name__} must implement merge_preds")

    def forward(self, *args: Any, mode: str = "tensor", **kwargs: Any) -> Any:
        return self.module(*args, mode=mode, **kwargs)

    def test_step(self, data: dict | list | tuple) -> list[Any]:
        """Run the model on each augmented view of the batch and merge per sample."""
        if isinstance(data, dict):
            views = len(next(iter(data.values())))
            view_batches: list[Any] = [{k: v[i] for k, v in data.items()} for i in range(views)]
        elif isinstance(data, (list, tuple)):
            views = len(data[0])
            view_batches = [[part[i] for part in data] for i in range(views)]
        else:
            raise TypeError(
                f"BaseTTAModel.test_step takes a dict or a list/tuple batch, got {type(data).__name__}"
            )
        predictions = [self.module.test_step(batch) for batch in view_batches]
        per_sample = [list(sample) for sample in zip(*predictions)]
        return self.merge_preds(per_sample)

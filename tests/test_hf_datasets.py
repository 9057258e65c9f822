"""A `datasets.Dataset` where engine expects a loader: batched in torch format, or refused with the fix."""

import datasets
import pytest
import torch

from engine import BaseModel, Runner
from engine.runner.build import build_dataloader


class Mean(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.seen = []

    def forward(self, x, y, mode="tensor"):
        self.seen.append((type(x), tuple(x.shape)))
        return {"loss": ((x.float() @ self.w - y) ** 2).mean()}


def rows(n=10):
    return datasets.Dataset.from_dict(
        {"x": [[i, i + 1, i + 2] for i in range(n)], "y": [float(i) for i in range(n)]}
    )


def test_a_dataset_in_a_loader_dict_is_batched_as_tensors(tmp_path):
    model = Mean()
    Runner(
        model=model,
        work_dir=None,
        train_dataloader=dict(dataset=rows(), batch_size=4),  # no with_format('torch') needed
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
        default_hooks=dict(logger=None),
    ).train()
    assert model.seen == [(torch.Tensor, (4, 3)), (torch.Tensor, (4, 3)), (torch.Tensor, (2, 3))]
    numpy_rows = rows().with_format("numpy")  # a format the user chose is kept
    assert build_dataloader(dict(dataset=numpy_rows), "x").dataset.format["type"] == "numpy"


def test_a_dataset_given_as_the_loader_is_refused_with_the_fix():
    with pytest.raises(
        TypeError,
        match=r"train_dataloader is a datasets.Dataset, not a loader; pass train_dataloader=dict\(dataset=ds, batch_size=32",
    ):
        build_dataloader(rows(), "train_dataloader")
    with pytest.raises(
        TypeError, match=r"DatasetDict; pick a split: val_dataloader=dict\(dataset=ds\['train'\]"
    ):
        build_dataloader(datasets.DatasetDict(train=rows()), "val_dataloader")

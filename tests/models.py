"""Tiny models that several test modules train (import with ``from models import ...``)."""

import torch
from torch import nn

from engine import BaseModel


class MMEngineToyModel(BaseModel):
    """The seed's model, as written there (no super().__init__() call)."""

    def __init__(self) -> None:
        self.linear = nn.Linear(1, 1)

    def forward(self, img, label, mode):
        feat = self.linear(img)
        if mode == "loss":
            loss1 = (feat - label).pow(2)
            loss2 = (feat - label).abs()
            return dict(loss1=loss1, loss2=loss2)
        elif mode == "predict":
            return [_feat for _feat in feat]


class ParamModel(BaseModel):
    """loss = p * x: the gradient is x, so the parameter's moves show each update.

    Predicting returns the weight itself, so a metric sees which weight validation used.
    """

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(0.0))

    def forward(self, x, mode):
        if mode == "loss":
            return {"loss": (self.p * x).sum()}
        return [self.p.detach().clone()]

"""The migration guide's MMEngineToyModel, run by engine: only the imports changed.

The model is the guide's, as written (no super().__init__(): engine's BaseModel allows
that); the dataset, DataLoader and Runner arguments fill the lines the guide elides.

Run: python recipes/toy.py
"""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from engine import BaseModel, Runner

train_dataset = [(torch.ones(1, 1), torch.ones(1, 1))] * 50
train_dataloader = DataLoader(train_dataset, batch_size=2)


class MMEngineToyModel(BaseModel):
    def __init__(self) -> None:
        self.linear = nn.Linear(1, 1)

    def forward(self, img, label, mode):
        feat = self.linear(img)
        # Called by train_step and return the loss dict
        if mode == "loss":
            loss1 = (feat - label).pow(2)
            loss2 = (feat - label).abs()
            return dict(loss1=loss1, loss2=loss2)
        # Called by val_step and return the predictions
        elif mode == "predict":
            return [_feat for _feat in feat]
        # tensor model, find more details in tutorials/


runner = Runner(
    model=MMEngineToyModel(),
    work_dir="work_dirs/toy",
    train_dataloader=train_dataloader,
    train_cfg=dict(by_epoch=True, max_epochs=5),
    optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)),
)
runner.train()

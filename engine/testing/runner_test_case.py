"""`RunnerTestCase`: MMEngine's test base that builds a small Runner from a config dict.

Ported MMEngine tests (``from engine.testing import RunnerTestCase``) use it to get an
epoch-based and an iteration-based config over a toy model, dataset and metric, all
registered by name in `engine.registry` for the duration of a test.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import time
from unittest import TestCase
from uuid import uuid4

import torch
from torch import nn
from torch.utils.data import Dataset

from engine.config_dict import Config
from engine.dist import is_distributed
from engine.evaluator import BaseMetric
from engine.logging import MessageHub, MMLogger
from engine.model import BaseModel
from engine.registry import DATASETS, METRICS, MODELS, DefaultScope
from engine.runner import Runner
from engine.visualization import Visualizer


class ToyModel(BaseModel):
    """Two linear layers, 2 -> 2 -> 1; the loss is ``sum(target - output)``."""

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.linear1 = nn.Linear(2, 2)
        self.linear2 = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode="tensor"):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        if isinstance(data_samples, list):
            data_samples = torch.stack(data_samples)
        outputs = self.linear2(self.linear1(inputs))
        if mode == "loss":
            return dict(loss=(data_samples - outputs).sum())
        return outputs


class ToyDataset(Dataset):
    """12 random 2-d inputs with target 1."""

    METAINFO: dict = dict()
    data = torch.randn(12, 2)
    label = torch.ones(12)

    @property
    def metainfo(self):
        return self.METAINFO

    def __len__(self):
        return self.data.size(0)

    def __getitem__(self, index):
        return dict(inputs=self.data[index], data_samples=self.label[index])


class ToyMetric(BaseMetric):
    """Always ``acc=1``."""

    def __init__(self, collect_device="cpu", dummy_metrics=None):
        super().__init__(collect_device=collect_device)
        self.dummy_metrics = dummy_metrics

    def process(self, data_batch, predictions):
        self.results.append({"acc": 1})

    def compute_metrics(self, results):
        return dict(acc=1)


class RunnerTestCase(TestCase):
    """Builds runners from ``self.epoch_based_cfg`` / ``self.iter_based_cfg``.

    ``setUp`` registers `ToyModel`, `ToyMetric` and `ToyDataset` and writes both configs
    (2 epochs, or 12 iterations, of 4 batches of 3); ``tearDown`` gives those names back
    what they held before, clears the global logger/hub/visualizer instances and deletes
    the work_dir.
    """

    dist_cfg = dict(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=29600, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0"
    )

    def setUp(self) -> None:
        self.temp_dir = tempfile.TemporaryDirectory()
        # What these names meant before, so tearDown gives back a test module's own ToyMetric.
        self._registered_before = {
            (registry, name): registry.module_dict.get(name)
            for registry, name in ((MODELS, "ToyModel"), (METRICS, "ToyMetric"),
                                   (DATASETS, "ToyDataset"))
        }  # fmt: skip
        MODELS.register_module(module=ToyModel, force=True)
        METRICS.register_module(module=ToyMetric, force=True)
        DATASETS.register_module(module=ToyDataset, force=True)

        def loader(sampler: str, shuffle: bool) -> dict:
            return dict(
                dataset=dict(type="ToyDataset"),
                sampler=dict(type=sampler, shuffle=shuffle),
                batch_size=3,
                num_workers=0,
            )

        self.epoch_based_cfg = Config(
            dict(
                work_dir=self.temp_dir.name,
                model=dict(type="ToyModel"),
                train_dataloader=loader("DefaultSampler", True),
                val_dataloader=loader("DefaultSampler", False),
                val_evaluator=[dict(type="ToyMetric")],
                test_dataloader=loader("DefaultSampler", False),
                test_evaluator=[dict(type="ToyMetric")],
                optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
                val_cfg=dict(),
                test_cfg=dict(),
                default_hooks=dict(logger=dict(type="LoggerHook", interval=1)),
                custom_hooks=[],
                env_cfg=dict(dist_cfg=dict(backend="nccl")),
                experiment_name="test1",
            )
        )
        self.iter_based_cfg: Config = copy.deepcopy(self.epoch_based_cfg)
        self.iter_based_cfg.train_dataloader = loader("InfiniteSampler", True)
        self.iter_based_cfg.log_processor = dict(by_epoch=False)
        self.iter_based_cfg.train_cfg = dict(by_epoch=False, max_iters=12)
        self.iter_based_cfg.default_hooks = dict(
            logger=dict(type="LoggerHook", interval=1),
            checkpoint=dict(type="CheckpointHook", interval=12, by_epoch=False),
        )

    def tearDown(self) -> None:
        logging.shutdown()
        for managed in (MMLogger, Visualizer, DefaultScope, MessageHub):
            managed._instance_dict.clear()
        for (registry, name), before in self._registered_before.items():
            registry.module_dict.pop(name, None)
            if before is not None:
                registry.module_dict[name] = before
        self.temp_dir.cleanup()
        if is_distributed():
            torch.distributed.destroy_process_group()

    def build_runner(self, cfg: Config) -> Runner:
        cfg.experiment_name = self.experiment_name
        return Runner.from_cfg(cfg)

    @property
    def experiment_name(self) -> str:
        # Unique per runner: two runners built in the same second must not share a name.
        return f"{self._testMethodName}_{time.time()}_{uuid4()}"

    def setup_dist_env(self) -> None:
        self.dist_cfg["MASTER_PORT"] += 1
        os.environ.update({k: str(v) for k, v in self.dist_cfg.items()})

    def clear_work_dir(self) -> None:
        logging.shutdown()
        for name in os.listdir(self.temp_dir.name):
            path = os.path.join(self.temp_dir.name, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)

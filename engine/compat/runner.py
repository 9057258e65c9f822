"""MMCV's ``EpochBasedRunner``/``IterBasedRunner`` API over engine's `Runner`.

The seed's MMCV example runs with its imports changed (``from engine.compat import Runner,
get_logger``): the model is adapted (`as_engine_model`), ``register_training_hooks``
translates the configs (`engine.compat.translate`), and ``run`` builds an engine `Runner`
and trains. Only the ``('train', n)`` workflow is supported; validate with engine's
``val_dataloader``/``val_evaluator`` instead of MMCV's ``('val', 1)``.

Example:
    >>> runner = Runner(model=model, work_dir='tmp_dir', optimizer=optimizer, max_epochs=5)
    >>> runner.register_training_hooks(lr_config=dict(policy='step', step=[2, 3]),
    ...                                optimizer_config=dict(grad_clip=None))
    >>> runner.run([train_dataloader], [('train', 1)])
"""

from __future__ import annotations

import logging
import os
from typing import Any

from torch import nn

from engine.compat.model_adapter import as_engine_model
from engine.compat.translate import mmcv_to_runner_kwargs
from engine.runner.runner import Runner as EngineRunner


def get_logger(
    name: str, log_file: str | None = None, log_level: int = logging.INFO
) -> logging.Logger:
    """MMCV's ``get_logger``: a standard logger (engine's own lines go to ``'engine'``)."""
    logger = logging.getLogger(name)
    logger.setLevel(log_level)
    if log_file is not None:
        logger.addHandler(logging.FileHandler(log_file))
    return logger


class EpochBasedRunner:
    """Train an MMCV model as MMCV's runner would, on engine.

    Args:
        model: The MMCV model (``train_step(data, optimizer)``).
        optimizer: A torch optimizer, its dict, or a dict of them keyed by sub-module.
        work_dir: Checkpoints and logs go there.
        logger: Accepted; engine logs to the ``'engine'`` logger.
        meta: Accepted and kept.
        max_epochs / max_iters: The run's length (one of them).
        **runner_kwargs: Passed on to engine's `Runner` (``randomness``, ``mixed_precision``...).
    """

    by_epoch = True

    def __init__(
        self,
        model: nn.Module,
        batch_processor: Any = None,
        optimizer: Any = None,
        work_dir: str | os.PathLike | None = None,
        logger: logging.Logger | None = None,
        meta: dict | None = None,
        max_iters: int | None = None,
        max_epochs: int | None = None,
        **runner_kwargs: Any,
    ) -> None:
        if batch_processor is not None:
            raise ValueError(
                "batch_processor is deprecated in MMCV and not supported; define model.train_step"
            )
        if (max_epochs is None) == (max_iters is None):
            raise ValueError("give exactly one of max_epochs and max_iters")
        self.model, self.optimizer, self.work_dir = model, optimizer, work_dir
        self.logger, self.meta = logger, meta
        self._max_epochs, self._max_iters = max_epochs, max_iters
        self.runner_kwargs = runner_kwargs
        self._configs: dict = {"optimizer_config": None}  # no OptimizerHook: model steps itself
        self.runner: EngineRunner | None = None

    def register_training_hooks(
        self,
        lr_config: dict | None,
        optimizer_config: dict | None = None,
        checkpoint_config: dict | None = None,
        log_config: dict | None = None,
        momentum_config: dict | None = None,
        timer_config: dict | None = None,
        custom_hooks_config: Any = None,
    ) -> None:
        """Record the configs MMCV turns into hooks; translated when `run` builds the Runner."""
        if momentum_config is not None:
            raise ValueError(
                "momentum_config is not supported; schedule momentum with engine's param_scheduler"
            )
        if custom_hooks_config:
            raise ValueError(
                "custom_hooks_config is not supported; pass engine Hooks as custom_hooks=[...]"
            )
        self._configs = dict(
            lr_config=lr_config,
            optimizer_config=optimizer_config,
            checkpoint_config=checkpoint_config,
            log_config=log_config,
        )

    def run(
        self, data_loaders: list, workflow: list, max_epochs: int | None = None, **kwargs: Any
    ) -> dict:
        """Train on ``data_loaders[0]`` (the ``('train', n)`` workflow); returns engine's metrics."""
        if [mode for mode, _ in workflow] != ["train"] or len(data_loaders) != 1:
            raise ValueError(
                f"workflow {workflow!r} is not supported; use [('train', 1)] with one dataloader "
                "(validate with engine's val_dataloader and val_evaluator)"
            )
        if max_epochs is not None:  # MMCV's deprecated place for the length
            self._max_epochs, self._max_iters = max_epochs, None
        cfgs = self._configs
        model = self.model
        if not getattr(model, "_mmcv_class", None):
            model = as_engine_model(model, self_stepping=cfgs["optimizer_config"] is None)
        engine_kwargs = mmcv_to_runner_kwargs(
            self.optimizer,
            cfgs["optimizer_config"],
            cfgs.get("lr_config"),
            cfgs.get("log_config"),
            cfgs.get("checkpoint_config"),
            self._max_epochs,
            self._max_iters,
        )
        if (
            cfgs.get("checkpoint_config") is None
            and "checkpoint" not in engine_kwargs["default_hooks"]
        ):
            engine_kwargs["default_hooks"]["checkpoint"] = None  # MMCV saves only when asked
        by_epoch = self._max_epochs is not None
        train_cfg = (
            dict(by_epoch=True, max_epochs=self._max_epochs)
            if by_epoch
            else dict(by_epoch=False, max_iters=self._max_iters)
        )
        self.runner = EngineRunner(
            model=model,
            work_dir=self.work_dir,
            train_dataloader=data_loaders[0],
            train_cfg=train_cfg,
            **engine_kwargs,
            **{**self.runner_kwargs, **kwargs},
        )
        return self.runner.train()


class IterBasedRunner(EpochBasedRunner):
    """MMCV's ``IterBasedRunner``: the same, counted in iterations (``max_iters``)."""

    by_epoch = False


# The migration guide writes MMCV's runner as ``Runner``.
Runner = EpochBasedRunner

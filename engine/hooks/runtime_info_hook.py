"""`RuntimeInfoHook`: the run's counters, lr, losses and metrics into ``runner.message_hub``.

What MMEngine's hook of this name does, so that ported code reading the hub
(``message_hub.get_scalar('train/loss').current()``, ``get_info('iter')``) finds the values.
Losses are handed to the hub as device tensors: they are read back to the host in batches
(`engine.logging.HistoryBuffer`), not once per iteration.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.hooks.hook import Hook


class RuntimeInfoHook(Hook):
    """Mirror epoch, iter, limits, lr, training outputs and metrics into the message hub.

    Keys as MMEngine's: infos ``epoch``, ``iter``, ``max_epochs``, ``max_iters``,
    ``loop_stage``, ``dataset_meta``, ``seed``, ``experiment_name``; scalars ``train/lr``
    (``train/<member>.lr`` for an OptimWrapperDict), ``train/<output key>``,
    ``val/<metric>``, ``test/<metric>``. A runner without ``message_hub`` is skipped.
    """

    priority = "VERY_HIGH"

    def __init__(self) -> None:
        self.last_loop_stage: str | None = None

    def before_run(self, runner) -> None:
        hub = _hub(runner)
        if hub is None:
            return
        hub.update_info_dict(
            dict(
                cfg=getattr(runner, "cfg", None),
                seed=getattr(runner, "seed", None),
                experiment_name=getattr(runner, "experiment_name", None),
            )
        )

    def before_train(self, runner) -> None:
        hub = _hub(runner)
        if hub is None:
            return
        hub.update_info("loop_stage", "train")
        for key in ("epoch", "iter", "max_epochs", "max_iters"):
            hub.update_info(key, getattr(runner, key))
        dataset = getattr(getattr(runner, "train_dataloader", None), "dataset", None)
        if hasattr(dataset, "metainfo"):
            hub.update_info("dataset_meta", dataset.metainfo)

    def after_train(self, runner) -> None:
        if _hub(runner) is not None:
            _hub(runner).pop_info("loop_stage")

    def before_train_epoch(self, runner) -> None:
        if _hub(runner) is not None:
            _hub(runner).update_info("epoch", runner.epoch)

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        hub = _hub(runner)
        if hub is None:
            return
        hub.update_info("iter", runner.iter)
        optim_wrapper = getattr(runner, "optim_wrapper", None)
        lrs_by_name = optim_wrapper.get_lr() if optim_wrapper is not None else {}
        assert isinstance(lrs_by_name, dict), (
            "runner.optim_wrapper.get_lr() should return a dict of lr lists, "
            f"got {type(lrs_by_name).__name__}"
        )
        for name, lrs in lrs_by_name.items():
            hub.update_scalar(f"train/{name}", lrs[0])

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        hub = _hub(runner)
        if hub is None or outputs is None:
            return
        for key, value in outputs.items():
            if isinstance(value, torch.Tensor) and value.numel() != 1:
                value = value.detach().float().mean()
            if isinstance(value, torch.Tensor | int | float):  # LoggerHook names bad values
                hub.update_scalar(f"train/{key}", value)

    def before_val(self, runner) -> None:
        hub = _hub(runner)
        if hub is not None:
            self.last_loop_stage = hub.get_info("loop_stage")
            hub.update_info("loop_stage", "val")

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        self._metrics(runner, "val", metrics)

    def after_val(self, runner) -> None:
        hub = _hub(runner)
        if hub is None:
            return
        if self.last_loop_stage == "train":
            hub.update_info("loop_stage", "train")
        else:
            hub.pop_info("loop_stage")
        self.last_loop_stage = None

    def before_test(self, runner) -> None:
        if _hub(runner) is not None:
            _hub(runner).update_info("loop_stage", "test")

    def after_test_epoch(self, runner, metrics: dict | None = None) -> None:
        self._metrics(runner, "test", metrics)

    def after_test(self, runner) -> None:
        if _hub(runner) is not None:
            _hub(runner).pop_info("loop_stage")

    def _metrics(self, runner, mode: str, metrics: dict | None) -> None:
        hub = _hub(runner)
        for key, value in (metrics or {}).items() if hub is not None else ():
            if _is_scalar(value):
                hub.update_scalar(f"{mode}/{key}", value)
            else:
                hub.update_info(f"{mode}/{key}", value)


def _is_scalar(value: Any) -> bool:
    """A number, or a one-element tensor/array (numpy scalars included)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    size = getattr(value, "size", None)
    size = value.numel() if isinstance(value, torch.Tensor) else size
    return size == 1 and hasattr(value, "item")


def _hub(runner) -> Any:
    return getattr(runner, "message_hub", None)

"""`NaiveVisualizationHook`: hand each test sample to ``runner.visualizer`` (MMEngine's).

engine's `Visualizer` has no drawing backend: ``add_datasample`` says so once and draws
nothing. The hook is here so configs that name it run; the samples it passes are the
``outputs`` of ``test_step``.
"""

from __future__ import annotations

from typing import Any

from engine.hooks.hook import Hook


class NaiveVisualizationHook(Hook):
    """Every `interval` test iterations, pass each output to ``visualizer.add_datasample``.

    Args:
        interval: test iterations between calls.
        draw_gt / draw_pred: forwarded to ``add_datasample``.
    """

    priority = "NORMAL"

    def __init__(self, interval: int = 1, draw_gt: bool = True, draw_pred: bool = True) -> None:
        self.interval, self.draw_gt, self.draw_pred = interval, draw_gt, draw_pred

    def after_test_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        visualizer = getattr(runner, "visualizer", None)
        if visualizer is None or not self.every_n_inner_iters(batch_idx, self.interval):
            return
        for index, sample in enumerate(outputs or ()):
            visualizer.add_datasample(
                f"test_{batch_idx}_{index}",
                None,
                data_sample=sample,
                draw_gt=self.draw_gt,
                draw_pred=self.draw_pred,
                step=batch_idx,
            )

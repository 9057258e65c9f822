"""`Visualizer`: MMEngine's ``runner.visualizer`` for scalars, sent to Accelerate's trackers.

engine logs through Accelerate's trackers (``Runner(log_with=...)``: TensorBoard, W&B,
...). The Visualizer is the MMEngine-named door to them for ported hooks: scalars, images
and the config go to every tracker that takes them. Drawing (boxes, masks, feature maps)
is not provided; ``add_datasample`` records nothing and says so once.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.utils.manager import ManagerMixin

logger = logging.getLogger("engine")


class Visualizer(ManagerMixin):
    """Send scalars (and images/config where a tracker takes them) to the run's trackers.

    Args:
        name: the instance name (`get_instance`).
        accelerator: whose trackers receive the values; the Runner sets it. Without one
            (or without trackers) values are only kept in `scalars`.
        vis_backends, save_dir, image, fig_save_cfg, fig_show_cfg: accepted for MMEngine
            configs; the trackers are chosen with ``Runner(log_with=...)``.

    Example:
        >>> runner.visualizer.add_scalars({'train/loss': 0.3}, step=runner.iter)
    """

    def __init__(self, name: str = "visualizer", accelerator: Any = None, **_: Any) -> None:
        super().__init__(name)
        self.accelerator = accelerator
        self.scalars: dict[str, list[tuple[int, float]]] = {}  # what was sent, per key
        self.dataset_meta: dict | None = None
        self._said_datasample = False

    def _trackers(self) -> list:
        return list(getattr(self.accelerator, "trackers", None) or [])

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        self.add_scalars({name: value}, step=step)

    def add_scalars(self, scalar_dict: dict, step: int = 0, **kwargs: Any) -> None:
        values = {k: v.item() if hasattr(v, "item") else v for k, v in scalar_dict.items()}
        for key, value in values.items():
            self.scalars.setdefault(key, []).append((step, value))
        if self._trackers():
            self.accelerator.log(values, step=step)

    def add_image(self, name: str, image: Any, step: int = 0) -> None:
        for tracker in self._trackers():
            if hasattr(tracker, "log_images"):
                tracker.log_images({name: image}, step=step)

    def add_config(self, config: Any, **kwargs: Any) -> None:
        for tracker in self._trackers():
            tracker.store_init_configuration(dict(config))

    def add_datasample(self, name: str, image: Any, data_sample: Any = None, **kw: Any) -> None:
        if not self._said_datasample:
            logger.info("Visualizer.add_datasample draws nothing in engine (no drawing backend)")
            self._said_datasample = True

    def close(self) -> None:
        return None

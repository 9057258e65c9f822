"""`DumpResults`: save every prediction to a pickle file, for `Evaluator.offline_evaluate` later."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch.distributed as dist
from accelerate.utils import send_to_device

from engine.evaluator.metric import BaseMetric

logger = logging.getLogger("engine")


class DumpResults(BaseMetric):
    """Collect the predictions of the whole dataset and write them to `out_file_path`.

    The file (written on the main process, atomically) holds one entry per sample, in dataset
    order, tensors on the CPU; ``pickle.load`` it and pass it to
    `Evaluator.offline_evaluate` to score it again with other metrics. Returns no metrics.

    Args:
        out_file_path: Where to write; must end with ``.pkl`` or ``.pickle``.
        collect_device, collect_dir: See `BaseMetric`.

    Example:
        >>> runner = Runner(..., test_evaluator=[Accuracy(), DumpResults('preds.pkl')])
    """

    def __init__(
        self,
        out_file_path: str | os.PathLike,
        collect_device: str = "cpu",
        collect_dir: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix="dump", collect_dir=collect_dir)
        if not str(out_file_path).endswith((".pkl", ".pickle")):
            raise ValueError(
                f"The output file must be a pkl file (.pkl or .pickle), got {str(out_file_path)!r}"
            )
        self.out_file_path = Path(out_file_path)

    def process(self, data_batch: Any, data_samples: Any) -> None:
        """Keep each sample's prediction, moved to the CPU."""
        self.results.extend(send_to_device(list(data_samples), "cpu"))

    def compute_metrics(self, results: list) -> dict:
        """Write `results` (main process only); returns ``{}``."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
            self.out_file_path.parent.mkdir(parents=True, exist_ok=True)
            # A temporary file renamed into place: an interrupted dump leaves no half file.
            fd, tmp = tempfile.mkstemp(dir=self.out_file_path.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    pickle.dump(results, f)
                os.replace(tmp, self.out_file_path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            logger.info("Results has been saved to %s.", self.out_file_path)
        return {}

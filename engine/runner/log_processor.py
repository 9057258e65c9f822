"""`LogProcessor`: MMEngine's formatter of the message hub's scalars into a log line.

engine's `LoggerHook` formats its own lines from device tensors it collects (one host sync
per interval); `Runner(log_processor=...)` is recorded for MMEngine configs. This class is
for ported code that calls ``runner.log_processor.get_log_after_iter(...)`` itself: it
reads the run's `MessageHub` (filled by `RuntimeInfoHook` and `IterTimerHook`).
"""

from __future__ import annotations

from typing import Any


class LogProcessor:
    """Window means of ``<mode>/<key>`` scalars in ``runner.message_hub``, as a line and a dict.

    Args:
        window_size: iterations averaged per key (``'epoch'``: the whole epoch so far).
        by_epoch: the line starts ``Epoch(train) [e][i/n]`` (else ``Iter(train) [i/n]``).
        num_digits: decimals of the printed values.
        custom_cfg, log_with_hierarchy, mean_pattern: accepted for MMEngine configs.
    """

    def __init__(
        self,
        window_size: int | str = 10,
        by_epoch: bool = True,
        custom_cfg: list | None = None,
        num_digits: int = 4,
        log_with_hierarchy: bool = False,
        mean_pattern: str = r".*(loss|time|data_time|grad_norm).*",
    ) -> None:
        self.window_size, self.by_epoch, self.num_digits = window_size, by_epoch, num_digits
        self.custom_cfg = custom_cfg or []
        self.log_with_hierarchy, self.mean_pattern = log_with_hierarchy, mean_pattern

    def _scalars(self, runner: Any, mode: str, window: int | None) -> dict[str, float]:
        out = {}
        for name, buffer in runner.message_hub.log_scalars.items():
            prefix, _, key = name.partition("/")
            if prefix == mode and key:
                out[key] = buffer.current() if key == "lr" else buffer.mean(window)
        return out

    def get_log_after_iter(self, runner: Any, batch_idx: int, mode: str) -> tuple[dict, str]:
        """(scalars, line) for the iteration `batch_idx` of `mode` that just ended."""
        window = None if self.window_size == "epoch" else int(self.window_size)
        tag = self._scalars(runner, mode, window)
        loader = getattr(runner, f"{mode}_dataloader", None)
        length = len(loader) if loader is not None and hasattr(loader, "__len__") else None
        if mode == "train" and self.by_epoch:
            head = f"Epoch(train) [{runner.epoch + 1}][{batch_idx + 1}/{length}]"
        elif mode == "train":
            head = f"Iter(train) [{runner.iter + 1}/{runner.max_iters}]"
        else:
            head = f"{'Epoch' if self.by_epoch else 'Iter'}({mode}) [{batch_idx + 1}/{length}]"
        return tag, "  ".join([head, *self._format(tag)])

    def get_log_after_epoch(
        self, runner: Any, batch_idx: int, mode: str, with_non_scalar: bool = False
    ) -> tuple[dict, str]:
        """(metrics, line) after a val/test epoch: the hub's ``<mode>/<metric>`` values."""
        tag = {
            name.partition("/")[2]: buffer.current()
            for name, buffer in runner.message_hub.log_scalars.items()
            if name.startswith(f"{mode}/") and not name.endswith(("time", "data_time"))
        }
        if with_non_scalar:
            tag.update(
                {
                    name.partition("/")[2]: value
                    for name, value in runner.message_hub.runtime_info.items()
                    if name.startswith(f"{mode}/")
                }
            )
        loader = getattr(runner, f"{mode}_dataloader", None)
        length = len(loader) if loader is not None and hasattr(loader, "__len__") else None
        head = f"{'Epoch' if self.by_epoch else 'Iter'}({mode}) [{length}/{length}]"
        return tag, "  ".join([head, *self._format(tag)])

    def _format(self, tag: dict) -> list[str]:
        return [
            f"{k}: {v:.{self.num_digits}f}" if isinstance(v, float) else f"{k}: {v}"
            for k, v in tag.items()
        ]

"""`LogProcessor`: MMEngine's formatter of the message hub's scalars into a (tag, line) pair.

A run given ``Runner(log_processor=...)`` (a dict, MMEngine's ``dict(type='LogProcessor',
window_size=50)``, or a built processor, a subclass included) has `LoggerHook` ask it for
every line and tag, as MMEngine's hook does. It reads the run's `MessageHub` (filled by
`RuntimeInfoHook` and `IterTimerHook`) and returns the same tag dict and log line as
MMEngine for the same history. Without one, the Runner's `DefaultLogProcessor` lets
`LoggerHook` write engine's own line (window means over every process, throughput), while
ported code that calls ``runner.log_processor.get_log_after_iter(...)`` still gets MMEngine's.
"""

from __future__ import annotations

import copy
import datetime
import re
from itertools import chain
from typing import Any

import numpy as np
import torch

_MODES = ("train", "val", "test")


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key


def _train_loop(runner: Any) -> Any:
    """The runner's train loop, or None when the run has none (an eval-only runner)."""
    loop = getattr(runner, "_train_loop", None)
    if loop is None:
        loop = getattr(runner, "train_loop", None)
    return None if isinstance(loop, dict) else loop


class LogProcessor:
    """Window statistics of ``<mode>/<key>`` scalars in ``runner.message_hub``.

    Args:
        window_size: iterations averaged for keys matching `mean_pattern` (default 10).
        by_epoch: lines read ``Epoch(train)  [e][i/n]`` (else ``Iter(train) [i/n]``).
        custom_cfg: extra or overriding statistics, each
            ``dict(data_src=key, method_name='mean'|'max'|'min'|'current',
            window_size=int|'epoch'|'global', log_name=new_key)``; without `log_name` the
            key itself is replaced (at most once per key).
        num_digits: decimals of the printed values.
        log_with_hierarchy: tag keys keep their ``train/``, ``val/`` prefix.
        mean_pattern: keys averaged over `window_size`; the others report their latest value.

    Raises:
        AssertionError: (as MMEngine) a log name defined twice, or ``window_size='epoch'``
            with ``by_epoch=False``.
    """

    engine_window_line = False  # LoggerHook asks this processor for its lines (see module doc)

    def __init__(
        self,
        window_size: int = 10,
        by_epoch: bool = True,
        custom_cfg: list | None = None,
        num_digits: int = 4,
        log_with_hierarchy: bool = False,
        mean_pattern: str = r".*(loss|time|data_time|grad_norm).*",
    ) -> None:
        self.window_size, self.by_epoch, self.num_digits = window_size, by_epoch, num_digits
        self.custom_cfg = list(custom_cfg) if custom_cfg else []
        self.log_with_hierarchy = log_with_hierarchy
        self.mean_pattern = re.compile(mean_pattern)
        self._check_custom_cfg()

    # -- public API ------------------------------------------------------------------------

    def get_log_after_iter(self, runner: Any, batch_idx: int, mode: str) -> tuple[dict, str]:
        """(tag, line) after iteration `batch_idx` of `mode` (``'train'|'val'|'test'``).

        Returns:
            The tag (window statistics, ``iter``, ``epoch`` in train/val by epoch, ``memory``
            on CUDA) and a line such as
            ``Epoch(train)  [2][ 2/20]  lr: 1.0000e-01  eta: 0:00:40  time: ...  loss: ...``.
        """
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        cfg = self._parse_windows_size(runner, batch_idx, self.custom_cfg)
        log_tag = self._collect_scalars(cfg, runner, mode)
        tag = (
            self._collect_scalars(cfg, runner, mode, True)
            if self.log_with_hierarchy
            else copy.deepcopy(log_tag)
        )
        lr_items = []
        for key, value in tag.items():
            if key.endswith("lr"):
                short = _strip(key, f"{mode}/")
                log_tag.pop(short)
                lr_items.append(f"{short}: {value:.{self.num_digits}e}")
        has_train_loop = _train_loop(runner) is not None
        line = self._head_after_iter(runner, batch_idx, mode, tag, has_train_loop)
        tag["iter"] = runner.iter + 1 if has_train_loop else 0
        line += " ".join(lr_items) + "  "
        hub = runner.message_hub
        if "time" in log_tag and "data_time" in log_tag and "eta" in hub.runtime_info:
            eta = datetime.timedelta(seconds=int(hub.get_info("eta")))
            line += (
                f"eta: {eta}  time: {log_tag.pop('time'):.{self.num_digits}f}  "
                f"data_time: {log_tag.pop('data_time'):.{self.num_digits}f}  "
            )
        if torch.cuda.is_available():
            tag["memory"] = self._get_max_memory(runner)
            line += f"memory: {tag['memory']}  "
        if mode in ("train", "val"):
            # Validation lines show only the validation losses; metrics come after the epoch.
            line += "  ".join(
                f"{name}: {self._fmt(value, tensors=False)}"
                for name, value in log_tag.items()
                if mode == "train" or name.startswith("val/loss")
            )
        return tag, line

    def get_log_after_epoch(
        self, runner: Any, batch_idx: int, mode: str, with_non_scalar: bool = False
    ) -> tuple[dict, str]:
        """(tag, line) after a val/test epoch: metrics, then non-scalar infos, then timings.

        Args:
            with_non_scalar: also put the hub's non-scalar ``<mode>/...`` infos in the tag.
        """
        if mode not in ("val", "test"):
            raise ValueError(f"get_log_after_epoch takes mode 'val' or 'test', got {mode!r}")
        size = self._get_dataloader_size(runner, mode)
        if self.by_epoch and mode == "val":
            line = f"Epoch(val) [{self._get_epoch(runner, mode)}][{size}/{size}]  "
        else:
            line = f"{'Epoch' if self.by_epoch else 'Iter'}({mode}) [{size}/{size}]  "
        cfg = copy.deepcopy(self.custom_cfg)
        custom_keys = {_strip(c["data_src"], f"{mode}/") for c in cfg}
        # Timings of an evaluation epoch are its mean, whatever the iteration window.
        for key in ("time", "data_time"):
            if key not in custom_keys:
                cfg.append(dict(data_src=key, window_size="epoch", method_name="mean"))
        cfg = self._parse_windows_size(runner, batch_idx, cfg)
        scalars = self._collect_scalars(cfg, runner, mode, self.log_with_hierarchy)
        non_scalars = self._collect_non_scalars(runner, mode)
        time_keys = ("time", "data_time", f"{mode}/time", f"{mode}/data_time")
        tag = {k: v for k, v in scalars.items() if k not in time_keys}
        times = {k: v for k, v in scalars.items() if k in time_keys}
        items = chain(tag.items(), non_scalars.items(), times.items())
        line += "  " + "  ".join(f"{k}: {self._fmt(v)}" for k, v in items)
        if with_non_scalar:
            tag.update(non_scalars)
        tag.update(times)
        return tag, line

    # -- parts (MMEngine's names: ported tests and subclasses override them) -----------------

    def _fmt(self, value: Any, tensors: bool = True) -> Any:
        if isinstance(value, float):
            return f"{value:.{self.num_digits}f}"
        if tensors and isinstance(value, torch.Tensor | np.ndarray):
            return f"\n{value}\n"
        return value

    def _head_after_iter(
        self, runner: Any, batch_idx: int, mode: str, tag: dict, has_train_loop: bool
    ) -> str:
        """``Epoch(mode) [e][ i/n]  `` or ``Iter(mode) [ i/n]  ``; right-aligned counters."""
        if self.by_epoch:
            size = self._get_dataloader_size(runner, mode)
            cur = str(self._get_iter(runner, batch_idx)).rjust(len(str(size)))
            if mode == "test":
                return f"Epoch(test) [{cur}/{size}]  "
            tag["epoch"] = epoch = self._get_epoch(runner, mode)
            width = len(str(runner.max_epochs)) + 3 if has_train_loop else 0
            return f"Epoch({mode}){f'[{epoch}]'.rjust(width)}[{cur}/{size}]  "
        if mode == "train":
            cur = str(self._get_iter(runner, batch_idx)).rjust(len(str(runner.max_iters)))
            return f"Iter(train) [{cur}/{runner.max_iters}]  "
        size = self._get_dataloader_size(runner, mode)
        return f"Iter({mode}) [{str(batch_idx + 1).rjust(len(str(size)))}/{size}]  "

    def _collect_scalars(
        self, custom_cfg: list, runner: Any, mode: str, reserve_prefix: bool = False
    ) -> dict:
        """Statistics of the hub's `mode` scalars (keys without the prefix unless kept)."""
        scalars = {
            (key if reserve_prefix else _strip(key, f"{mode}/")): buffer
            for key, buffer in runner.message_hub.log_scalars.items()
            if key.startswith(mode)
        }
        tag = {
            key: buffer.mean(self.window_size)
            if self.mean_pattern.search(key)
            else buffer.current()
            for key, buffer in scalars.items()
        }
        for cfg in copy.deepcopy(custom_cfg):
            src = cfg.pop("data_src")
            name = cfg.pop("log_name", src)
            if reserve_prefix:
                src, name = f"{mode}/{src}", f"{mode}/{name}"
            if src in scalars:
                method = cfg.pop("method_name", "mean")
                if method == "current":
                    cfg.pop("window_size", None)  # the latest value has no window
                tag[name] = scalars[src].statistics(method, **cfg)
        return tag

    def _collect_non_scalars(self, runner: Any, mode: str) -> dict:
        """The hub's runtime infos under `mode` (metrics that are not one number)."""
        return {
            (key if self.log_with_hierarchy else _strip(key, f"{mode}/")): value
            for key, value in runner.message_hub.runtime_info.items()
            if key.startswith(mode)
        }

    def _check_custom_cfg(self) -> None:
        names = set()
        for cfg in self.custom_cfg:
            assert "data_src" in cfg, f"each custom_cfg entry needs a data_src, got {cfg}"
            name = cfg.get("log_name", cfg["data_src"])
            assert name not in names, (
                f"log_processor custom_cfg defines {name!r} twice: give each entry of the "
                "same data_src its own log_name"
            )
            names.add(name)
            assert self.by_epoch or cfg.get("window_size") != "epoch", (
                "custom_cfg window_size='epoch' needs by_epoch=True"
            )

    def _parse_windows_size(self, runner: Any, batch_idx: int, custom_cfg: list | None = None):
        """A copy of `custom_cfg` with ``'epoch'``/``'global'`` windows as iteration counts."""
        cfgs = copy.deepcopy(self.custom_cfg if custom_cfg is None else custom_cfg)
        for cfg in cfgs:
            size = cfg.get("window_size")
            if size is None or isinstance(size, int):
                continue
            if size == "epoch":
                cfg["window_size"] = batch_idx + 1
            elif size == "global":
                cfg["window_size"] = runner.iter + 1
            else:
                raise TypeError(f"window_size must be an int, 'epoch' or 'global', got {size!r}")
        return cfgs

    def _get_max_memory(self, runner: Any) -> int:
        """Peak CUDA memory in MB since the last call (the peak counter is reset)."""
        device = getattr(runner.model, "output_device", None)
        peak = torch.cuda.max_memory_allocated(device=device)
        torch.cuda.reset_peak_memory_stats(device)
        return int(peak) // (1024 * 1024)

    def _get_iter(self, runner: Any, batch_idx: int) -> int:
        """1-based: the batch in the epoch when by epoch, else the global iteration."""
        return batch_idx + 1 if self.by_epoch else runner.iter + 1

    def _get_epoch(self, runner: Any, mode: str) -> int:
        """1-based training epoch; for val, the epoch that just trained (0 without training)."""
        if mode == "train":
            return runner.epoch + 1
        if mode == "val":
            return runner.epoch if _train_loop(runner) is not None else 0
        raise ValueError(f"_get_epoch takes mode 'train' or 'val', got {mode!r}")

    def _get_cur_loop(self, runner: Any, mode: str) -> Any:
        return getattr(runner, f"{mode}_loop")

    def _get_dataloader_size(self, runner: Any, mode: str) -> int:
        return len(self._get_cur_loop(runner, mode).dataloader)


class DefaultLogProcessor(LogProcessor):
    """The Runner's processor when none is configured: `LoggerHook` writes engine's own
    window line for the run (``engine_window_line``); called directly, it is `LogProcessor`."""

    engine_window_line = True

"""`LoggerHook`: MMEngine's interval log line, a JSONL scalar file, trackers and a progress bar.

Reading a tensor back to the host waits for the device to finish its queued work, so the
training hot path only adds device tensors; everything is read back once per interval.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint.data_position import loader_length
from engine.hooks.hook import Hook, HookList
from engine.hooks.iter_timer_hook import IterTimerHook
from engine.hooks.log_lines import copy_logs, metrics_line, train_line
from engine.hooks.log_writer import LogWriter
from engine.hooks.logger_hook_args import check_logger_hook_args
from engine.hooks.processor_logging import (
    log_eval_iter,
    log_exp_name,
    log_test_epoch,
    log_train_iter,
    log_val_epoch,
    processor_of,
    train_log_due,
)
from engine.hooks.progress_bars import ProgressBars
from engine.hooks.throughput_hook import ThroughputHook

logger = logging.getLogger("engine")

_UNSET = object()


class LoggerHook(Hook):
    """Logs window means of the training scalars every `interval` iterations, and metrics.

    Each interval gives one line on the main process (logger ``'engine'``, INFO), e.g.
    ``Epoch(train) [3][ 40/100]  lr: 1.0000e-02  eta: 0:01:23  time: 0.0123  data_time: 0.0011
    memory: 123  loss: 0.5123  grad_norm: 1.2300`` (``Iter(train) [ 40/1000]`` when training
    by iterations; ``memory``, the peak allocated MiB, only on CUDA), one JSON object appended
    to ``scalars.jsonl`` in the run folder (``runner.log_dir``) and the same scalars sent to Accelerate's trackers. Each
    key is averaged over the iterations of the window that returned it (``grad_norm`` only
    over updates). Validation and test metrics are logged and written the same way.

    A run given a log processor (``Runner(log_processor=dict(window_size=50))``, a subclass of
    `LogProcessor`) has its lines and tags made by ``runner.log_processor`` instead, at
    MMEngine's points and with MMEngine's calls (`engine.hooks.processor_logging`): its
    statistics are the main process's message-hub history, as in MMEngine.

    After each window, ``nonfinite_keys`` lists the keys that had a NaN/inf value in it and
    ``last_scalars`` holds its means, on every process (a NaN policy can act on them).

    Args:
        interval: log every `interval` iterations (of the epoch when training by epochs).
        ignore_last: drop the log of an epoch's (or run's) last, shorter window, unless the
            epoch is no longer than `interval`. Its non-finite check still runs.
        log_metric_by_epoch: accepted for MMEngine configs; trackers get every scalar, metrics
            included, at the iteration (one step axis), with the epoch as a value.
        out_suffix: the files written in ``work_dir``: ``'.jsonl'`` (or MMEngine's ``'.json'``)
            writes ``scalars.jsonl``; other suffixes are accepted for MMEngine configs.
        progress_bar: tqdm bars (``tqdm.auto``: widgets in a notebook) on the main process, for
            training and evaluation; None shows them in a terminal or a notebook.
        interval_exp_name: every this many iterations, also log ``Exp name: <name>``.
        out_dir: after the run, copy the work_dir's log files (those ending with an
            `out_suffix`, ``scalars.jsonl`` and ``run.log`` included when ``'.json'``/``'.log'``
            is listed) to ``<out_dir>/<work_dir name>/``; ``keep_local=False`` then removes
            the originals. ``file_client_args`` (with out_dir; MMEngine's older name) or
            ``backend_args`` are accepted (local disk only).

    Example:
        >>> runner = Runner(model, work_dir='runs/a', ..., default_hooks=dict(logger=LoggerHook(50)))
    """

    reports_throughput = True  # its line carries a ThroughputHook's rates
    priority = "BELOW_NORMAL"

    def __init__(
        self,
        interval: int = 10,
        ignore_last: bool = True,
        log_metric_by_epoch: bool = True,
        out_suffix: str | tuple[str, ...] = (".jsonl",),
        progress_bar: bool | None = None,
        interval_exp_name: int = 1000,
        out_dir: str | Path | None = None,
        keep_local: bool = True,
        file_client_args: dict | None = None,
        backend_args: dict | None = None,
    ) -> None:
        check_logger_hook_args(
            interval, ignore_last, interval_exp_name, out_dir, out_suffix, keep_local,
            file_client_args, backend_args,
        )  # fmt: skip
        self.interval_exp_name, self.out_dir, self.keep_local = (
            interval_exp_name,
            out_dir,
            keep_local,
        )
        self.interval = interval
        self.ignore_last = ignore_last
        self.log_metric_by_epoch = log_metric_by_epoch
        self.out_suffix = (out_suffix,) if isinstance(out_suffix, str) else tuple(out_suffix)
        self.progress_bar = progress_bar
        self.nonfinite_keys: list[str] = []
        self.last_scalars: dict[str, float] = {}
        self._bars = ProgressBars(progress_bar)
        self._writer = LogWriter(self.out_suffix, self._bars)
        self.json_log_path: str | None = None  # MMEngine's ``<timestamp>.json`` (before_run)
        self._runner: Any = None  # the runner whose line source is `_processor`
        self._processor: Any = None  # its log processor when that formats the lines
        self._reset()

    def _reset(self) -> None:
        # Looked up once per window instead of on every iteration (see after_train_iter).
        self._timer_hook: Any = _UNSET
        self._train_len: Any = _UNSET
        self._sums: dict[str, torch.Tensor] = {}  # device tensors: adding them never syncs
        self._counts: dict[str, int] = {}
        self._iters, self._time, self._data_time = 0, 0.0, 0.0
        self._at = (0, 0, 0, 0)  # epoch, batch_idx, iter, step of the window's last iteration

    @property
    def _bar(self) -> Any:
        """The open training bar, or None."""
        return self._bars.train

    def _line_source(self, runner) -> Any:
        """The processor that formats this run's lines, or None for engine's own line
        (looked up once per runner: this runs every iteration)."""
        if runner is not self._runner:
            self._runner, self._processor = runner, processor_of(runner)
        return self._processor

    def before_run(self, runner) -> None:
        self.json_log_path = f"{getattr(runner, 'timestamp', 'run')}.json"

    # -- training -------------------------------------------------------------
    def before_train(self, runner) -> None:
        self._reset()

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        # Hot path: device ops and Python numbers only. Nothing here reads a tensor back.
        if isinstance(outputs, torch.Tensor):
            outputs = {"loss": outputs}
        for key, value in (outputs if outputs is not None else {}).items():
            if isinstance(value, torch.Tensor):
                value = value.detach().float() if value.requires_grad else value.float()
                value = value.mean() if value.ndim else value
            elif isinstance(value, (int, float)):
                value = torch.tensor(float(value))
            else:
                raise TypeError(
                    f"LoggerHook: outputs[{key!r}] must be a tensor or a number, got {type(value).__name__}"
                )
            self._sums[key] = self._sums[key] + value if key in self._sums else value.clone()
            self._counts[key] = self._counts.get(key, 0) + 1
        timer = self._timer_hook
        if timer is _UNSET:
            timer = self._timer_hook = _timer(runner)
        if timer is not None:
            self._time += timer.iter_time
            self._data_time += timer.data_time
        self._iters += 1
        state = runner.state
        self._at = (state.epoch, batch_idx, state.iter, state.step)
        self._bars.train_step(runner, batch_idx)
        processor = self._line_source(runner)
        if processor is not None:  # a configured log processor writes the line (MMEngine's way)
            if _is_main(runner):
                log_exp_name(self, runner, batch_idx)
            if train_log_due(self, runner, batch_idx):
                self._flush(runner, emit=False)  # the window's non-finite check, one sync
                if _is_main(runner):
                    log_train_iter(self, runner, processor, batch_idx)
            return
        if state.iter % self.interval_exp_name == 0 and _is_main(runner):
            logger.info("Exp name: %s", getattr(runner, "experiment_name", None))

        if state.max_epochs is not None:  # by epoch: windows count within the epoch, as MMEngine
            length = self._train_len
            if length is _UNSET:  # len() of a prepared loader is not free
                length = self._train_len = loader_length(getattr(runner, "train_dataloader", None))
            if (batch_idx + 1) % self.interval == 0:
                self._flush(runner, emit=True)
            elif length is not None and batch_idx + 1 == length:
                self._flush(runner, emit=not self.ignore_last or length <= self.interval)
        elif state.iter % self.interval == 0:
            self._flush(runner, emit=True)
        elif state.max_iters is not None and state.iter == state.max_iters:
            self._flush(runner, emit=not self.ignore_last or state.max_iters <= self.interval)

    def after_train_epoch(self, runner) -> None:
        emit = not self.ignore_last and self._line_source(runner) is None
        if runner.state.max_epochs is not None and self._iters:  # epoch of unknown length
            self._flush(runner, emit=emit)
        self._bars.close_train()

    def after_train(self, runner) -> None:
        if self._iters:  # stopped early, mid-window
            self._flush(runner, emit=not self.ignore_last and self._line_source(runner) is None)
        self._bars.close_train()

    def _flush(self, runner, emit: bool) -> None:
        throughput = _throughput(runner)
        pending = throughput.pending() if throughput is not None else {}  # e.g. a token count
        keys = list(self._sums)
        tensors = [self._sums[k] for k in keys] + list(pending.values())
        device = tensors[0].device if tensors else None
        # float64 keeps large token counts exact (MPS has no float64; its counts stay small)
        dtype = torch.float64 if pending and device.type != "mps" else torch.float32
        stacked = torch.stack([t.to(device, dtype) for t in tensors]) if tensors else None
        accelerator = getattr(runner, "accelerator", None)
        if keys and getattr(accelerator, "num_processes", 1) > 1:
            # The logged losses are the mean over processes, not the main process's own: one
            # all-reduce per window (every process flushes at the same iteration).
            means = accelerator.reduce(stacked[: len(keys)].contiguous(), reduction="mean")
            stacked = torch.cat([means, stacked[len(keys) :]])
        # The one host sync of the interval: every window sum comes back in one transfer.
        sums = stacked.tolist() if stacked is not None else []
        scalars = {k: s / self._counts[k] for k, s in zip(keys, sums)}
        self.last_scalars = scalars
        # A NaN/inf anywhere in a window makes its sum non-finite: no per-iteration check needed.
        self.nonfinite_keys = [k for k, v in scalars.items() if not math.isfinite(v)]
        rates = throughput.report(dict(zip(pending, sums[len(keys) :]))) if throughput else {}
        iters, time, data_time = self._iters, self._time, self._data_time
        at = self._at
        self._reset()
        if not emit or not _is_main(runner):
            return
        line, record = train_line(
            runner, _timer(runner), at, (iters, time, data_time), scalars, rates, device
        )
        self._writer.emit(runner, line, record, step=record["iter"])

    def after_run(self, runner) -> None:
        work_dir = getattr(runner, "work_dir", None)
        if self.out_dir is not None and work_dir is not None and _is_main(runner):
            # The run folder's files, to <out_dir>/<work_dir name>/<run folder name>/
            source = getattr(runner, "log_dir", None) or work_dir
            out = self.out_dir if source == work_dir else Path(self.out_dir) / Path(work_dir).name
            target = copy_logs(source, out, self.out_suffix, self.keep_local)
            logger.info("LoggerHook: copied the logs to %s", target)

    # -- evaluation -------------------------------------------------------------
    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        self._bars.close_eval()
        processor = self._line_source(runner)
        if processor is None:
            self._log_metrics(runner, "val", metrics)
        elif _is_main(runner):
            log_val_epoch(self, runner, processor)

    def after_test_epoch(self, runner, metrics: dict | None = None) -> None:
        self._bars.close_eval()
        processor = self._line_source(runner)
        if processor is None:
            self._log_metrics(runner, "test", metrics)
        elif _is_main(runner):
            log_test_epoch(self, runner, processor)

    def _log_metrics(self, runner, mode: str, metrics: dict | None) -> None:
        if _is_main(runner):
            line, record = metrics_line(runner, mode, metrics)
            # Trackers get one step axis, the iteration, for every scalar (W&B needs growing
            # steps; the epoch is logged as a value beside the metrics).
            self._writer.emit(runner, line, record, step=record["iter"])

    # -- evaluation bars -------------------------------------------------------------
    def after_val_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._bars.eval_step(runner, "val")
        processor = self._line_source(runner)
        if processor is not None and _is_main(runner):
            log_eval_iter(self, runner, processor, batch_idx, "val")

    def after_test_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._bars.eval_step(runner, "test")
        processor = self._line_source(runner)
        if processor is not None and _is_main(runner):
            log_eval_iter(self, runner, processor, batch_idx, "test")


def _is_main(runner) -> bool:
    accelerator = getattr(runner, "accelerator", None)
    return accelerator is None or accelerator.is_main_process


def _throughput(runner) -> Any:
    """The run's `ThroughputHook`, whose rates join each window's line, or None."""
    hooks = getattr(runner, "hooks", None)
    found = hooks.get(ThroughputHook) if isinstance(hooks, HookList) else None
    return found if isinstance(found, ThroughputHook) else None


def _timer(runner) -> IterTimerHook | None:
    hooks = getattr(runner, "hooks", None)
    found = hooks.get(IterTimerHook) if isinstance(hooks, HookList) else None
    return found if isinstance(found, IterTimerHook) else None

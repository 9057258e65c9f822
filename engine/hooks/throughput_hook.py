"""`ThroughputHook`: samples/s, tokens/s and model FLOPs utilisation (MFU) of training.

The hook only counts on the hot path (batch sizes are read from tensor shapes; a token count
that is a device tensor is added on the device). The rates are computed once per log
window, at `LoggerHook`'s host sync, and appear in its line, ``scalars.jsonl`` and the
trackers as ``samples_per_s``, ``tokens_per_s`` and ``mfu``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from engine.hooks.hook import Hook

logger = logging.getLogger("engine")

# Dense bf16/fp16 tensor-core peaks (FLOP/s) by device-name fragment, most specific first.
# A fallback only: pass `peak_flops` (bench/gpu.py passes a measured matmul peak).
PEAK_FLOPS = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("RTX 4090", 165e12),
    ("V100", 125e12),
)


class ThroughputHook(Hook):
    """Report training throughput and MFU at the logger's interval.

    Samples per batch come from the batch's first tensor (its first dimension; a list of
    per-sample tensors counts its length). Tokens come from the model: a method
    ``num_tokens(batch)`` returning the batch's token count (an int or a device tensor),
    or an int attribute ``tokens_per_sample``. Rates are summed over processes (each
    process's rate times the process count).

    MFU is achieved model FLOP/s over the device's peak: FLOPs per sample are
    `flops_per_sample`, else `flops_per_token` times tokens, where ``'auto'`` estimates
    ``6 * trainable parameters`` per token (a transformer's forward and backward) when the
    model reports tokens. The peak is `peak_flops` (per device), else looked up in
    `PEAK_FLOPS` from the CUDA device name (dense bf16); without a peak, no MFU.

    Args:
        flops_per_sample: training FLOPs (forward + backward) of one sample.
        flops_per_token: training FLOPs per token, or ``'auto'``.
        peak_flops: the device's peak FLOP/s for the run's precision.
        interval: report every `interval` iterations itself (a log line, one host sync)
            when the run has no `LoggerHook`; with one, its interval is used.
        batch_size_fn: ``batch -> samples`` where `batch_size` guesses wrong.
        clock: seconds as a float (tests pass a fake clock).

    Example:
        >>> runner = Runner(gpt, ..., custom_hooks=[ThroughputHook(peak_flops=989e12)])
        >>> # Iter(train) [ 50/1000]  ...  samples_per_s: 812.3  tokens_per_s: 415898  mfu: 0.41
    """

    priority = "NORMAL"

    def __init__(
        self,
        flops_per_sample: float | None = None,
        flops_per_token: float | str | None = "auto",
        peak_flops: float | None = None,
        interval: int = 50,
        batch_size_fn: Callable[[Any], int] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if flops_per_token not in (None, "auto") and not isinstance(flops_per_token, int | float):
            raise ValueError(
                f"flops_per_token must be a number, 'auto' or None, got {flops_per_token!r}"
            )
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"ThroughputHook interval must be an int >= 1, got {interval!r}")
        self.flops_per_sample = flops_per_sample
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self.interval = interval
        self.batch_size_fn = batch_size_fn or batch_size
        self.clock = clock
        self.last: dict[str, float] = {}  # the last window's rates
        self._count_tokens: Callable[[Any], Any] | None = None
        self._token_flops: float | None = None
        self._peak: float | None = None
        self._processes = 1
        self._standalone = False
        self._reset(clock())

    def _reset(self, now: float) -> None:
        self._start = now
        self._samples = 0
        self._tokens: Any = 0  # an int, or a device tensor when the model counts on the device

    # -- set-up ---------------------------------------------------------------
    def before_train(self, runner) -> None:
        accelerator = getattr(runner, "accelerator", None)
        model = getattr(runner, "model", None)
        if accelerator is not None and model is not None:
            model = accelerator.unwrap_model(model)
        self._processes = accelerator.num_processes if accelerator is not None else 1
        self._count_tokens = _token_counter(model, self.batch_size_fn)
        self._token_flops = None
        if self._count_tokens is not None:
            if self.flops_per_token == "auto" and model is not None:
                params = sum(p.numel() for p in model.parameters() if p.requires_grad)
                self._token_flops = 6.0 * params
            elif isinstance(self.flops_per_token, int | float):
                self._token_flops = float(self.flops_per_token)
        device = getattr(accelerator, "device", None)
        self._peak = self.peak_flops if self.peak_flops is not None else _known_peak(device)
        hooks = getattr(runner, "hooks", None)
        self._standalone = hooks is None or not any(
            getattr(h, "reports_throughput", False) for h in hooks
        )
        self._reset(self.clock())

    # -- hot path: host counters and at most one device add --------------------
    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._samples += self.batch_size_fn(data_batch)
        if self._count_tokens is not None:
            self._tokens = self._tokens + self._count_tokens(data_batch)
        if self._standalone and runner.state.iter % self.interval == 0:
            rates = self.report(self.pending_values())  # one host sync, at the interval
            logger.info("  ".join(f"{k}: {_fmt(v)}" for k, v in rates.items()))

    # -- the window's report (LoggerHook calls these at its flush) -------------
    def pending(self) -> dict[str, torch.Tensor]:
        """Device tensors the report needs read back (the logger reads them with its own)."""
        return {"tokens": self._tokens} if isinstance(self._tokens, torch.Tensor) else {}

    def pending_values(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.pending().items()}

    def report(self, values: Mapping[str, float] | None = None) -> dict[str, float]:
        """The window's rates; starts the next window. `values` holds `pending()` read back."""
        now = self.clock()
        seconds = max(now - self._start, 1e-12)
        tokens = (values or {}).get("tokens", self._tokens)
        samples = self._samples
        self._reset(now)
        if samples == 0:
            self.last = {}
            return {}
        n = self._processes
        rates = {"samples_per_s": samples * n / seconds}
        flops = None
        if self._count_tokens is not None:
            rates["tokens_per_s"] = float(tokens) * n / seconds
            if self._token_flops is not None:
                flops = self._token_flops * float(tokens) / seconds
        if self.flops_per_sample is not None:
            flops = self.flops_per_sample * samples / seconds
        if flops is not None and self._peak:
            rates["mfu"] = flops / self._peak  # per device: this process's FLOP/s, its peak
        self.last = rates
        return rates


def batch_size(batch: Any) -> int:
    """Samples in `batch`: the first dimension of its first tensor; under an ``'inputs'``
    key that holds a list (``ImgDataPreprocessor``'s images of different sizes), the
    list's length. 0 when the batch holds no tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, Mapping):
        inputs = batch.get("inputs")
        if isinstance(inputs, list | tuple):
            return len(inputs)
        items = [inputs, *batch.values()] if inputs is not None else batch.values()
    elif isinstance(batch, list | tuple):
        items = batch
    else:
        return 0
    for item in items:
        n = batch_size(item)
        if n:
            return n
    return 0


def _token_counter(model: Any, size: Callable[[Any], int]) -> Callable[[Any], Any] | None:
    counter = getattr(model, "num_tokens", None)
    if callable(counter):
        return counter
    per_sample = getattr(model, "tokens_per_sample", None)
    if isinstance(per_sample, int) and not isinstance(per_sample, bool):
        return lambda batch: per_sample * size(batch)
    return None


def _known_peak(device: Any) -> float | None:
    if device is None or torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for fragment, peak in PEAK_FLOPS if fragment in name), None)


def _fmt(value: float) -> str:
    return f"{value:.4f}" if value < 10 else f"{value:.1f}"

"""`ProfilerHook`: profile the first training epochs/iterations with ``torch.profiler``.

MMEngine's arguments. The trace is a Chrome trace (open it in chrome://tracing or Perfetto)
written to ``json_trace_path`` or, by default, ``<log_dir>/profiler_trace.json`` on the
main process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from engine.hooks.hook import Hook

logger = logging.getLogger("engine")


def check_kineto() -> bool:
    """Whether torch's profiler backend (Kineto) is built in."""
    return bool(torch.autograd.kineto_available())


class ProfilerHook(Hook):
    """Profile from ``before_run`` until `profile_times` epochs (or iterations) are done.

    Args:
        by_epoch: count `profile_times` in epochs, else iterations.
        profile_times: how many epochs/iterations to profile (at most the run's length).
        activity_with_cpu / activity_with_cuda: the profiler's activities.
        schedule: ``dict(wait=..., warmup=..., active=..., repeat=...)`` for
            ``torch.profiler.schedule``, or None.
        on_trace_ready: a callable, ``dict(type='log_trace', **table_args)`` (prints the
            table), ``dict(type='tb_trace', dir_name=...)`` (TensorBoard; relative to
            ``log_dir``) or None (a Chrome trace at the end).
        record_shapes, profile_memory, with_stack, with_flops: ``torch.profiler.profile``'s.
        json_trace_path: where the Chrome trace goes (default: in the run folder).
    """

    priority = "VERY_LOW"

    def __init__(
        self,
        *,
        by_epoch: bool = True,
        profile_times: int = 1,
        activity_with_cpu: bool = True,
        activity_with_cuda: bool = False,
        schedule: dict | None = None,
        on_trace_ready: Any = None,
        record_shapes: bool = False,
        profile_memory: bool = False,
        with_stack: bool = False,
        with_flops: bool = False,
        json_trace_path: str | None = None,
    ) -> None:
        if not check_kineto():
            raise ImportError("ProfilerHook needs torch's Kineto profiler, missing from this build")
        if isinstance(profile_times, bool) or not isinstance(profile_times, int):
            raise ValueError(
                f"ProfilerHook profile_times must be an int >= 1, got {profile_times!r}"
            )
        if profile_times < 1:
            raise ValueError(f"ProfilerHook profile_times must be an int >= 1, got {profile_times}")
        if by_epoch and profile_times > 1:
            raise ValueError(
                "ProfilerHook profiles at most one epoch (profile_times=1 with by_epoch=True); "
                f"got profile_times={profile_times}: pass by_epoch=False to count iterations"
            )
        if on_trace_ready is not None and not (
            callable(on_trace_ready) or isinstance(on_trace_ready, dict)
        ):
            raise ValueError(
                f"ProfilerHook on_trace_ready must be a callable, a dict or None, got {on_trace_ready!r}"
            )
        self.activities = []
        if activity_with_cpu:
            self.activities.append(torch.profiler.ProfilerActivity.CPU)
        if activity_with_cuda:
            self.activities.append(torch.profiler.ProfilerActivity.CUDA)
        self.by_epoch, self.profile_times = by_epoch, profile_times
        self.schedule = torch.profiler.schedule(**schedule) if schedule is not None else None
        self.on_trace_ready = on_trace_ready
        self.record_shapes, self.profile_memory = record_shapes, profile_memory
        self.with_stack, self.with_flops = with_stack, with_flops
        self.json_trace_path = json_trace_path
        self.profiler: Any = None
        self._closed = False
        self.trace_path: Path | None = None

    def before_run(self, runner) -> None:
        limit = runner.max_epochs if self.by_epoch else runner.max_iters
        if limit is not None and limit < self.profile_times:
            raise ValueError(
                f"ProfilerHook profile_times={self.profile_times} exceeds the run's {limit}"
            )
        self.profiler = torch.profiler.profile(
            activities=self.activities or None,  # none chosen: torch's default (all there are)
            schedule=self.schedule,
            on_trace_ready=self._parse_trace_config(runner),
            record_shapes=self.record_shapes,
            profile_memory=self.profile_memory,
            with_stack=self.with_stack,
            with_flops=self.with_flops,
        )
        self.profiler.__enter__()
        self._closed = False
        logger.info("ProfilerHook: profiling the first %d %s", self.profile_times,
                    "epoch(s)" if self.by_epoch else "iteration(s)")  # fmt: skip

    def _parse_trace_config(self, runner) -> Any:
        spec = self.on_trace_ready
        if spec is None or callable(spec):
            return spec
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind == "log_trace":
            return lambda prof: print(prof.key_averages().table(**spec))
        if kind == "tb_trace":
            folder = Path(spec.pop("dir_name", "tf_tracing_logs"))
            if not folder.is_absolute():
                folder = Path(_log_dir(runner)) / folder
            return torch.profiler.tensorboard_trace_handler(str(folder), **spec)
        raise ValueError(
            f"ProfilerHook on_trace_ready type must be 'log_trace' or 'tb_trace', got {kind!r}"
        )

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self._closed or self.profiler is None:
            return
        self.profiler.step()
        if not self.by_epoch and runner.iter + 1 >= self.profile_times:
            self._export_chrome_trace(runner)

    def after_train_epoch(self, runner) -> None:
        if self.profiler is None or self._closed:
            return
        if not self.by_epoch or runner.epoch + 1 >= self.profile_times:
            self._export_chrome_trace(runner)

    def after_run(self, runner) -> None:
        if self.profiler is not None and not self._closed:
            self._export_chrome_trace(runner)

    def _export_chrome_trace(self, runner) -> None:
        self._closed = True
        self.profiler.__exit__(None, None, None)
        if self.on_trace_ready is not None and self.json_trace_path is None:
            return
        accelerator = getattr(runner, "accelerator", None)
        if accelerator is not None and not accelerator.is_main_process:
            return
        path = Path(self.json_trace_path or Path(_log_dir(runner)) / "profiler_trace.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.profiler.export_chrome_trace(str(path))
        self.trace_path = path
        logger.info("ProfilerHook: wrote the trace %s", path)


def _log_dir(runner) -> str:
    folder = getattr(runner, "log_dir", None) or getattr(runner, "work_dir", None)
    if folder is None:
        raise ValueError("ProfilerHook needs a work_dir (or json_trace_path) to write its trace")
    return str(folder)


class NPUProfilerHook(Hook):
    """MMEngine's Ascend NPU profiler: engine does not run on NPUs, so building it is an
    error that says so (accepted by name so configs fail clearly, not with a KeyError)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "NPUProfilerHook needs an Ascend NPU (torch_npu), which engine does not support; "
            "use ProfilerHook"
        )

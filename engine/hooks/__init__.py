"""`Hook` with MMEngine's events, the dispatcher the loops call, and the stock hooks."""

from engine.hooks.checkpoint_hook import CheckpointHook
from engine.hooks.dist_sampler_seed_hook import DistSamplerSeedHook
from engine.hooks.early_stopping_hook import EarlyStoppingHook
from engine.hooks.ema_hook import EMAHook
from engine.hooks.empty_cache_hook import EmptyCacheHook
from engine.hooks.hook import Hook, HookList
from engine.hooks.iter_timer_hook import IterTimerHook
from engine.hooks.logger_hook import LoggerHook
from engine.hooks.naive_visualization_hook import NaiveVisualizationHook
from engine.hooks.nan_guard_hook import NanGuardHook
from engine.hooks.param_scheduler_hook import ParamSchedulerHook
from engine.hooks.prepare_tta_hook import PrepareTTAHook
from engine.hooks.profiler_hook import NPUProfilerHook, ProfilerHook
from engine.hooks.runtime_info_hook import RuntimeInfoHook
from engine.hooks.signal_hook import SignalHook
from engine.hooks.sync_buffers_hook import SyncBuffersHook
from engine.hooks.throughput_hook import ThroughputHook

__all__ = [
    "CheckpointHook",
    "DistSamplerSeedHook",
    "EMAHook",
    "EarlyStoppingHook",
    "EmptyCacheHook",
    "Hook",
    "HookList",
    "IterTimerHook",
    "LoggerHook",
    "NaiveVisualizationHook",
    "NPUProfilerHook",
    "NanGuardHook",
    "ParamSchedulerHook",
    "PrepareTTAHook",
    "ProfilerHook",
    "RuntimeInfoHook",
    "SignalHook",
    "SyncBuffersHook",
    "ThroughputHook",
]

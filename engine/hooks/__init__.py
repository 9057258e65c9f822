"""`Hook` with MMEngine's events, the dispatcher the loops call, and the stock hooks."""

from engine.hooks.checkpoint_hook import CheckpointHook
from engine.hooks.early_stopping_hook import EarlyStoppingHook
from engine.hooks.ema_hook import EMAHook
from engine.hooks.hook import Hook, HookList
from engine.hooks.iter_timer_hook import IterTimerHook
from engine.hooks.logger_hook import LoggerHook
from engine.hooks.nan_guard_hook import NanGuardHook
from engine.hooks.param_scheduler_hook import ParamSchedulerHook
from engine.hooks.signal_hook import SignalHook
from engine.hooks.throughput_hook import ThroughputHook

__all__ = [
    "CheckpointHook",
    "EMAHook",
    "EarlyStoppingHook",
    "Hook",
    "HookList",
    "IterTimerHook",
    "LoggerHook",
    "NanGuardHook",
    "ParamSchedulerHook",
    "SignalHook",
    "ThroughputHook",
]

"""`Runner`, the loop functions, `TrainState`, and the Accelerator's set-up."""

from engine.checkpoint import find_latest_checkpoint, save_checkpoint
from engine.registry import RUNNERS
from engine.runner.amp import autocast
from engine.runner.log_processor import LogProcessor
from engine.runner.loop_objects import (
    BaseLoop,
    EpochBasedTrainLoop,
    IterBasedTrainLoop,
    TestLoop,
    ValLoop,
)
from engine.runner.loops import evaluate, train_epochs, train_iters
from engine.runner.priority import Priority, get_priority
from engine.runner.resume import load_checkpoint
from engine.runner.run_loop import run_loop
from engine.runner.runner import Runner
from engine.runner.train_state import TrainState

RUNNERS.register_module(module=Runner, force=True)  # found by name: build_runner_with_tta

__all__ = [
    "BaseLoop",
    "EpochBasedTrainLoop",
    "IterBasedTrainLoop",
    "LogProcessor",
    "Priority",
    "Runner",
    "TestLoop",
    "ValLoop",
    "autocast",
    "get_priority",
    "TrainState",
    "evaluate",
    "find_latest_checkpoint",
    "load_checkpoint",
    "run_loop",
    "save_checkpoint",
    "train_epochs",
    "train_iters",
]

"""`Runner`, the loop functions, `TrainState`, and the Accelerator's set-up.

``load_checkpoint``/``save_checkpoint`` here are MMEngine's ``.pth`` helpers
(`engine.runner.checkpoint`); engine's checkpoint folders are `engine.checkpoint`'s.
"""

from engine.registry import RUNNERS
from engine.runner.activation_checkpointing import turn_on_activation_checkpointing
from engine.runner.amp import autocast
from engine.runner.checkpoint import (
    CheckpointLoader,
    find_latest_checkpoint,
    get_state_dict,
    load_checkpoint,
    load_state_dict,
    save_checkpoint,
    weights_to_cpu,
)
from engine.runner.flexible_runner import FlexibleRunner
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
from engine.runner.run_loop import run_loop
from engine.runner.runner import Runner
from engine.runner.train_state import TrainState

RUNNERS.register_module(module=Runner, force=True)  # found by name: build_runner_with_tta

__all__ = [
    "BaseLoop",
    "CheckpointLoader",
    "EpochBasedTrainLoop",
    "FlexibleRunner",
    "IterBasedTrainLoop",
    "LogProcessor",
    "Priority",
    "Runner",
    "TestLoop",
    "ValLoop",
    "autocast",
    "get_priority",
    "get_state_dict",
    "load_state_dict",
    "turn_on_activation_checkpointing",
    "weights_to_cpu",
    "TrainState",
    "evaluate",
    "find_latest_checkpoint",
    "load_checkpoint",
    "run_loop",
    "save_checkpoint",
    "train_epochs",
    "train_iters",
]

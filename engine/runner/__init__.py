"""`Runner`, the loop functions, `TrainState`, and the Accelerator's set-up."""

from engine.checkpoint import find_latest_checkpoint, save_checkpoint
from engine.runner.loops import evaluate, train_epochs, train_iters
from engine.runner.resume import load_checkpoint
from engine.runner.run_loop import run_loop
from engine.runner.runner import Runner
from engine.runner.train_state import TrainState

__all__ = [
    "Runner",
    "TrainState",
    "evaluate",
    "find_latest_checkpoint",
    "load_checkpoint",
    "run_loop",
    "save_checkpoint",
    "train_epochs",
    "train_iters",
]

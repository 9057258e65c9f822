"""engine: MMEngine-style models and optimisation on Hugging Face Accelerate."""

from engine.checkpoint import CheckpointError, save_checkpoint
from engine.checkpoint_hook import CheckpointHook
from engine.early_stopping import EarlyStoppingHook
from engine.ema import EMAHook
from engine.evaluator import Accuracy, BaseMetric, Evaluator
from engine.export import export_weights
from engine.hooks import Hook, IterTimerHook, ParamSchedulerHook
from engine.log_hook import LoggerHook
from engine.loops import evaluate, run_loop, train_epochs, train_iters
from engine.model import BaseModel
from engine.nan_guard import NanGuardHook
from engine.optim import OptimWrapper, OptimWrapperDict
from engine.optim_build import build_optim_wrapper
from engine.preprocess import BaseDataPreprocessor, ImgDataPreprocessor
from engine.runner import Runner
from engine.schedules import (
    ConstantLR,
    ConstantMomentum,
    CosineAnnealingLR,
    CosineAnnealingMomentum,
    ExponentialLR,
    ExponentialMomentum,
    LinearLR,
    LinearMomentum,
    MultiStepLR,
    MultiStepMomentum,
    OneCycleLR,
    PolyLR,
    PolyMomentum,
    StepLR,
    StepMomentum,
)
from engine.signals import SignalHook
from engine.state import TrainState
from engine.throughput_hook import ThroughputHook
from engine.wrappers import MMSeparateDistributedDataParallel

__all__ = [
    "Accuracy",
    "BaseDataPreprocessor",
    "BaseMetric",
    "BaseModel",
    "CheckpointError",
    "CheckpointHook",
    "ConstantLR",
    "ConstantMomentum",
    "CosineAnnealingLR",
    "CosineAnnealingMomentum",
    "EMAHook",
    "EarlyStoppingHook",
    "Evaluator",
    "ExponentialLR",
    "ExponentialMomentum",
    "Hook",
    "ImgDataPreprocessor",
    "IterTimerHook",
    "LinearLR",
    "LinearMomentum",
    "LoggerHook",
    "MMSeparateDistributedDataParallel",
    "MultiStepLR",
    "MultiStepMomentum",
    "NanGuardHook",
    "OneCycleLR",
    "OptimWrapper",
    "OptimWrapperDict",
    "ParamSchedulerHook",
    "PolyLR",
    "PolyMomentum",
    "Runner",
    "SignalHook",
    "StepLR",
    "StepMomentum",
    "ThroughputHook",
    "TrainState",
    "build_optim_wrapper",
    "evaluate",
    "export_weights",
    "run_loop",
    "save_checkpoint",
    "train_epochs",
    "train_iters",
]

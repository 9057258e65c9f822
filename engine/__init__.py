"""engine: MMEngine-style models and optimisation on Hugging Face Accelerate."""

from engine.checkpoint import CheckpointError, export_weights, load_exported, save_checkpoint
from engine.evaluator import Accuracy, BaseMetric, Evaluator
from engine.hooks import (
    CheckpointHook,
    EarlyStoppingHook,
    EMAHook,
    Hook,
    IterTimerHook,
    LoggerHook,
    NanGuardHook,
    ParamSchedulerHook,
    SignalHook,
    ThroughputHook,
)
from engine.model import (
    BaseDataPreprocessor,
    BaseModel,
    BaseModule,
    ExponentialMovingAverage,
    ImgDataPreprocessor,
    MMSeparateDistributedDataParallel,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
)
from engine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper
from engine.optim.scheduler import (
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
from engine.runner import Runner, TrainState, evaluate, run_loop, train_epochs, train_iters
from engine.structures import BaseDataElement, InstanceData, LabelData, PixelData

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
    "load_exported",
    "run_loop",
    "save_checkpoint",
    "train_epochs",
    "train_iters",
    "BaseModule",
    "ExponentialMovingAverage",
    "MomentumAnnealingEMA",
    "StochasticWeightAverage",
    "BaseDataElement",
    "InstanceData",
    "LabelData",
    "PixelData",
]

# Optimisation names added with MMEngine's optimizer constructor, AMP wrapper and schedulers.
from engine.optim import AmpOptimWrapper, DefaultOptimWrapperConstructor  # noqa: E402
from engine.optim.scheduler import (  # noqa: E402
    CosineRestartLR,
    CosineRestartMomentum,
    ReduceOnPlateauLR,
    ReduceOnPlateauMomentum,
)

__all__ += [
    "AmpOptimWrapper",
    "CosineRestartLR",
    "CosineRestartMomentum",
    "DefaultOptimWrapperConstructor",
    "ReduceOnPlateauLR",
    "ReduceOnPlateauMomentum",
]

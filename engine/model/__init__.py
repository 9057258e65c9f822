"""Models: `BaseModule`/`BaseModel`, data preprocessors, weight init, averaged models,
distributed wrappers and compilation."""

from engine.model.averaged_model import (
    BaseAveragedModel,
    ExponentialMovingAverage,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
)
from engine.model.base_model import BaseModel
from engine.model.base_module import (
    BaseModule,
    ModuleDict,
    ModuleList,
    Sequential,
    is_model_wrapper,
)
from engine.model.compilation import compile_model
from engine.model.data_preprocessor import BaseDataPreprocessor, ImgDataPreprocessor
from engine.model.mm_ddp import MMDistributedDataParallel, MMFullyShardedDataParallel
from engine.model.stacking import merge_dict, stack_batch
from engine.model.sync_batchnorm import convert_sync_batchnorm, revert_sync_batchnorm
from engine.model.test_time_aug import BaseTTAModel
from engine.model.weight_init import (
    BaseInit,
    Caffe2XavierInit,
    ConstantInit,
    KaimingInit,
    NormalInit,
    PretrainedInit,
    TruncNormalInit,
    UniformInit,
    XavierInit,
    bias_init_with_prob,
    caffe2_xavier_init,
    constant_init,
    initialize,
    kaiming_init,
    normal_init,
    trunc_normal_,
    trunc_normal_init,
    uniform_init,
    update_init_info,
    xavier_init,
)
from engine.model.wrappers import MMSeparateDistributedDataParallel

__all__ = [
    "BaseDataPreprocessor",
    "BaseModel",
    "ImgDataPreprocessor",
    "MMDistributedDataParallel",
    "MMFullyShardedDataParallel",
    "MMSeparateDistributedDataParallel",
    "compile_model",
    "BaseModule",
    "ModuleDict",
    "ModuleList",
    "Sequential",
    "Caffe2XavierInit",
    "ConstantInit",
    "KaimingInit",
    "NormalInit",
    "PretrainedInit",
    "TruncNormalInit",
    "UniformInit",
    "XavierInit",
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "constant_init",
    "initialize",
    "kaiming_init",
    "normal_init",
    "trunc_normal_",
    "trunc_normal_init",
    "uniform_init",
    "update_init_info",
    "xavier_init",
    "BaseAveragedModel",
    "ExponentialMovingAverage",
    "MomentumAnnealingEMA",
    "StochasticWeightAverage",
    "BaseInit",
    "BaseTTAModel",
    "convert_sync_batchnorm",
    "is_model_wrapper",
    "merge_dict",
    "revert_sync_batchnorm",
    "stack_batch",
]

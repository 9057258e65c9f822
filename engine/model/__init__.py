"""Models: `BaseModule`/`BaseModel`, data preprocessors, weight init, averaged models,
distributed wrappers and compilation."""

from engine.model.averaged_model import (
    BaseAveragedModel,
    ExponentialMovingAverage,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
)
from engine.model.base_model import BaseModel
from engine.model.base_module import BaseModule, ModuleDict, ModuleList, Sequential
from engine.model.compilation import compile_model
from engine.model.data_preprocessor import BaseDataPreprocessor, ImgDataPreprocessor
from engine.model.weight_init import (
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
]

"""Models: `BaseModel`, data preprocessors, distributed wrappers and compilation."""

from engine.model.base_model import BaseModel
from engine.model.compilation import compile_model
from engine.model.data_preprocessor import BaseDataPreprocessor, ImgDataPreprocessor
from engine.model.wrappers import MMSeparateDistributedDataParallel

__all__ = [
    "BaseDataPreprocessor",
    "BaseModel",
    "ImgDataPreprocessor",
    "MMSeparateDistributedDataParallel",
    "compile_model",
]

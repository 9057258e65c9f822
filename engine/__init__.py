"""engine: MMEngine-style models and optimisation on Hugging Face Accelerate."""

from engine.model import BaseModel
from engine.optim import OptimWrapper, OptimWrapperDict
from engine.preprocess import BaseDataPreprocessor, ImgDataPreprocessor

__all__ = [
    "BaseDataPreprocessor",
    "BaseModel",
    "ImgDataPreprocessor",
    "OptimWrapper",
    "OptimWrapperDict",
]

"""Data containers passed as ``data_samples``: `BaseDataElement` and its kinds.

Importing it lets ``torch.utils.data.default_collate`` batch them as lists (`collate`).
"""

from engine.structures import collate as _collate  # noqa: F401  (registers the collation)
from engine.structures.base_data_element import BaseDataElement
from engine.structures.instance_data import InstanceData
from engine.structures.label_data import LabelData
from engine.structures.pixel_data import PixelData

__all__ = ["BaseDataElement", "InstanceData", "LabelData", "PixelData"]

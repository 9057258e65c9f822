"""Data containers passed as ``data_samples``: `BaseDataElement` and its kinds."""

from engine.structures.base_data_element import BaseDataElement
from engine.structures.instance_data import InstanceData
from engine.structures.label_data import LabelData
from engine.structures.pixel_data import PixelData

__all__ = ["BaseDataElement", "InstanceData", "LabelData", "PixelData"]

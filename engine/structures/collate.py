"""Teach torch's ``default_collate`` to keep data elements as a list, as MMEngine's collate does.

A batch of ``{'inputs': tensor, 'data_samples': InstanceData(...)}`` then collates to stacked
inputs and a *list* of data elements (their fields have different sizes per sample, so they
cannot be stacked). Registered once, on import of `engine.structures`, through
``collate_fn_map``, the extension point torch documents for ``default_collate``; it only adds
a case torch would otherwise reject with an error.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data._utils.collate import default_collate_fn_map

from engine.structures.base_data_element import BaseDataElement

__all__ = ["collate_data_elements"]


def collate_data_elements(batch: list[BaseDataElement], *, collate_fn_map: Any = None) -> list:
    """A list of data elements stays a list (the elements are not copied)."""
    return list(batch)


default_collate_fn_map.setdefault(BaseDataElement, collate_data_elements)

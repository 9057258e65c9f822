"""Data preprocessors: move a batch to the model's device and normalise images there.

A preprocessor is a child module of the model (``model.data_preprocessor``), so
``model.to(device)`` moves it too and ``train_step`` calls
``model.data_preprocessor(batch, training=True)`` before the forward pass.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.structures import BaseDataElement

__all__ = ["BaseDataPreprocessor", "ImgDataPreprocessor", "PreprocessorConfigError"]


class PreprocessorConfigError(ValueError, AssertionError):
    """A preprocessor argument or input that cannot work (an `AssertionError` too, as
    MMEngine's checks are, so ported code catching either keeps working)."""


def _rebuild(seq: list | tuple, items: list) -> list | tuple:
    """Return ``items`` in a container of the same type as ``seq`` (namedtuples included)."""
    if hasattr(seq, "_fields"):  # a namedtuple takes its fields positionally
        return type(seq)(*items)
    return type(seq)(items)


class BaseDataPreprocessor(nn.Module):
    """Move every tensor in a nested batch to the device the model lives on.

    Subclasses that augment whole batches (MixUp, CutMix, ...) override
    ``forward(data, training=False)``, call ``super().forward(data, training)``
    or ``self.cast_data(data)`` first, and augment only when ``training`` is
    true; ``train_step`` passes ``training=True``, ``val_step``/``test_step``
    pass ``training=False``.

    Args:
        non_blocking: passed to ``Tensor.to``; with pinned DataLoader memory the
            host-to-device copy then overlaps with compute.

    Example:
        >>> pre = BaseDataPreprocessor()
        >>> batch = pre({"inputs": torch.zeros(2, 3), "meta": ["a", "b"]})
        >>> batch["inputs"].device == pre.device
        True
    """

    def __init__(self, non_blocking: bool = False) -> None:
        super().__init__()
        self.non_blocking = non_blocking
        # An empty buffer moves with every model.to()/cuda()/FSDP placement, so the
        # device is never tracked by hand; non-persistent keeps it out of checkpoints.
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        """The device batches are moved to: wherever the module currently is."""
        return self._device_anchor.device

    # MMEngine's names for the same values, read by ported code and tests.
    @property
    def _device(self) -> torch.device:
        return self._device_anchor.device

    @property
    def _non_blocking(self) -> bool:
        return self.non_blocking

    def cast_data(self, data: Any) -> Any:
        """Recursively move tensors in dicts/lists/tuples to ``self.device``.

        Args:
            data: a tensor, or any nesting of mappings, lists and tuples.

        Returns:
            The same structure and container types, tensors moved; other values
            (strings, numbers, arbitrary objects) are returned unchanged.
        """
        if isinstance(data, (torch.Tensor, BaseDataElement)):
            return data.to(self.device, non_blocking=self.non_blocking)
        if isinstance(data, Mapping):
            moved = {key: self.cast_data(value) for key, value in data.items()}
            if type(data) is dict:
                return moved
            if isinstance(data, MutableMapping):
                # copy() keeps the subclass and its extras (a defaultdict's factory).
                out = copy.copy(data)
                out.update(moved)
                return out
            return type(data)(moved)
        if isinstance(data, (list, tuple)):
            return _rebuild(data, [self.cast_data(item) for item in data])
        return data

    def forward(self, data: Any, training: bool = False) -> Any:
        """Move ``data`` to the device.

        Args:
            data: the batch as the DataLoader yields it.
            training: true in ``train_step``; unused here, read by subclasses.

        Returns:
            ``data`` with every tensor on ``self.device``.
        """
        return self.cast_data(data)


def _stat_values(name: str, values: Any) -> tuple[float, ...]:
    """Validate mean/std as 1 or 3 numbers and return them as floats."""
    flat = torch.as_tensor(values, dtype=torch.float64).flatten().tolist()
    if len(flat) not in (1, 3):
        raise PreprocessorConfigError(
            f"ImgDataPreprocessor: `{name}` should have 1 or 3 values (one per channel), "
            f"got {len(flat)}: {values!r}"
        )
    return tuple(flat)


class ImgDataPreprocessor(BaseDataPreprocessor):
    """Move images to the device, then flip channels, cast to float, normalise and pad.

    The batch is a dict with ``'inputs'`` (an NCHW tensor, or a list of CHW
    tensors of different sizes) and optional ``'data_samples'``, as in MMEngine,
    or a tuple/list whose first item is the inputs (``(img, label)`` from a plain
    DataLoader). Images are moved before the float cast so a uint8 batch crosses
    to the device at a quarter of the float32 size.

    Args:
        mean: 1 or 3 per-channel values subtracted from the inputs, or None.
        std: 1 or 3 per-channel values the inputs are divided by, or None.
            ``mean`` and ``std`` are given together or not at all.
        pad_size_divisor: the padded height and width are multiples of this.
        pad_value: the value written into the padding (after normalisation).
        bgr_to_rgb: reverse the channel order of 3-channel inputs.
        rgb_to_bgr: the same flip, named for the other direction.
        non_blocking: passed to ``Tensor.to``.

    Example:
        >>> pre = ImgDataPreprocessor(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        ...                           bgr_to_rgb=True, pad_size_divisor=32)
        >>> out = pre({"inputs": [torch.zeros(3, 30, 40, dtype=torch.uint8)], "data_samples": None})
        >>> out["inputs"].shape
        torch.Size([1, 3, 32, 64])
    """

    def __init__(
        self,
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
        pad_size_divisor: int = 1,
        pad_value: float = 0,
        bgr_to_rgb: bool = False,
        rgb_to_bgr: bool = False,
        non_blocking: bool = False,
    ) -> None:
        super().__init__(non_blocking=non_blocking)
        if (mean is None) != (std is None):
            raise PreprocessorConfigError(
                "ImgDataPreprocessor: mean and std should be both given or both None, "
                f"got mean={mean!r}, std={std!r}"
            )
        if bgr_to_rgb and rgb_to_bgr:
            raise PreprocessorConfigError(
                "ImgDataPreprocessor: `bgr2rgb` and `rgb2bgr` cannot both be set (bgr_to_rgb and rgb_to_bgr each flip the channels)"
            )
        if not isinstance(pad_size_divisor, int) or pad_size_divisor < 1:
            raise PreprocessorConfigError(
                f"ImgDataPreprocessor: pad_size_divisor must be an int >= 1, got {pad_size_divisor!r}"
            )
        self.pad_size_divisor = pad_size_divisor
        self.pad_value = pad_value
        self.flip_channels = bgr_to_rgb or rgb_to_bgr
        self._stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None
        if mean is not None:
            self._stats = (_stat_values("mean", mean), _stat_values("std", std))
            if any(s == 0 for s in self._stats[1]):
                raise PreprocessorConfigError(
                    f"ImgDataPreprocessor: std must be non-zero, got {std!r}"
                )
        # Non-persistent buffers follow the module's device without entering checkpoints;
        # without normalisation there are none (MMEngine has no `mean` attribute then).
        if self._stats is not None:
            self.register_buffer("mean", None, persistent=False)
            self.register_buffer("std", None, persistent=False)
        self._build_stats()

    # MMEngine's names for these settings.
    @property
    def _channel_conversion(self) -> bool:
        return self.flip_channels

    @property
    def _enable_normalize(self) -> bool:
        return self._stats is not None

    def _build_stats(self) -> None:
        if self._stats is not None:
            self.mean, self.std = (
                torch.tensor(v, dtype=torch.float32, device=self.device).view(-1, 1, 1)
                for v in self._stats
            )

    def _apply(self, fn, recurse=True):
        # model.half()/.bfloat16() (DeepSpeed does this) casts floating buffers too,
        # and bf16 rounds a mean of 123.675 to 123.5; rebuild them in float32 from
        # the exact values on whichever device the module now lives on.
        super()._apply(fn, recurse)
        self._build_stats()
        return self

    def _process(self, image: torch.Tensor) -> torch.Tensor:
        """Flip, cast and normalise a CHW or NCHW tensor (channels at dim -3)."""
        channels = image.shape[-3]
        if self.flip_channels and channels == 3:
            image = image.flip(-3)
        image = image.float()
        if self._stats is not None:
            self._check_channels(image)
            image = (image - self.mean) / self.std
        return image

    def _check_channels(self, image: torch.Tensor) -> None:
        if len(self._stats[0]) == 3 and (image.dim() < 3 or image.shape[-3] != 3):
            channels = image.shape[-3] if image.dim() >= 3 else 1
            raise PreprocessorConfigError(
                "ImgDataPreprocessor: If the mean has 3 values, the images must be (3, H, W); "
                f"got {channels} channels (shape {tuple(image.shape)}). Give 1 value for other "
                "channel counts"
            )

    def _pad(self, image: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Pad to ``height`` x ``width`` rounded up to ``pad_size_divisor``."""
        d = self.pad_size_divisor
        height, width = math.ceil(height / d) * d, math.ceil(width / d) * d
        # F.pad takes (left, right, top, bottom): pad only bottom and right so pixel
        # coordinates (boxes, masks) stay valid.
        pad = (0, width - image.shape[-1], 0, height - image.shape[-2])
        return F.pad(image, pad, value=self.pad_value) if any(pad) else image

    def _process_inputs(self, inputs: Any) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            if inputs.dim() != 4:
                raise ValueError(
                    f"ImgDataPreprocessor: a tensor input must be NCHW, got shape {tuple(inputs.shape)}"
                )
            batch = self._process(inputs)
            return self._pad(batch, *batch.shape[-2:])
        if isinstance(inputs, (list, tuple)) and inputs:
            if all(isinstance(x, torch.Tensor) for x in inputs):
                if self._stats is not None:
                    for x in inputs:
                        self._check_channels(x)
                shapes = [tuple(x.shape) for x in inputs]
                if any(len(s) != 3 for s in shapes) or len({s[0] for s in shapes}) != 1:
                    raise ValueError(
                        "ImgDataPreprocessor: a list input must hold CHW tensors with one "
                        f"channel count, got shapes {shapes}"
                    )
                size = max(s[1] for s in shapes), max(s[2] for s in shapes)
                return torch.stack([self._pad(self._process(x), *size) for x in inputs])
            kind = f"{type(inputs).__name__} of {sorted({type(x).__name__ for x in inputs})}"
        else:
            kind = type(inputs).__name__
            kind = f"empty {kind}" if isinstance(inputs, (list, tuple)) else kind
        raise TypeError(
            f"ImgDataPreprocessor: inputs must be an NCHW tensor or a list of CHW tensors, got {kind}"
        )

    def forward(self, data: Any, training: bool = False) -> Any:
        """Preprocess a batch.

        Args:
            data: ``{'inputs': ..., 'data_samples': ...}`` or ``(inputs, *rest)``.
            training: true in ``train_step``; unused here, read by subclasses.

        Returns:
            A dict with ``'inputs'`` (a float NCHW tensor) and the batch's other keys
            (``'data_samples'`` among them when present), or a tuple/list of the input
            type with the inputs replaced; everything else moved to the device.
        """
        data = self.cast_data(data)
        if isinstance(data, Mapping):
            if "inputs" not in data:
                raise ValueError(
                    f"ImgDataPreprocessor: a dict batch needs an 'inputs' key, got keys {list(data)}"
                )
            # Only the keys the batch has: forward(**batch) must not get an unasked-for
            # data_samples argument.
            return {**data, "inputs": self._process_inputs(data["inputs"])}
        if isinstance(data, (list, tuple)) and data:
            return _rebuild(data, [self._process_inputs(data[0]), *data[1:]])
        raise TypeError(
            "ImgDataPreprocessor: a batch must be a dict with 'inputs' or a non-empty "
            f"tuple/list with the inputs first, got {type(data).__name__}"
        )

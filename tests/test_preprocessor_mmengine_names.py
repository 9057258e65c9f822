"""Data preprocessors under MMEngine's attribute names and error types (ported tests read them)."""

import pytest
import torch

from engine.model import BaseDataPreprocessor, BaseModel, ImgDataPreprocessor


def test_private_names_follow_the_module():
    pre = BaseDataPreprocessor(non_blocking=True)
    assert pre._non_blocking is True and pre._device == torch.device("cpu")
    pre.to("meta")
    assert pre._device.type == "meta" and pre.device.type == "meta"
    img = ImgDataPreprocessor(mean=[1, 2, 3], std=[1, 1, 1], bgr_to_rgb=True)
    assert img._enable_normalize and img._channel_conversion
    plain = ImgDataPreprocessor()
    assert not plain._enable_normalize and not hasattr(plain, "mean")


def test_config_errors_are_value_and_assertion_errors():
    for kwargs, text in [
        (dict(mean=(1, 2), std=(1, 2, 3)), "`mean` should have 1 or 3 values"),
        (dict(bgr_to_rgb=True, rgb_to_bgr=True), "`bgr2rgb` and `rgb2bgr`"),
        (dict(std=[1, 1, 1]), "mean and std should be both given or both None"),
    ]:
        with pytest.raises(ValueError, match=text) as info:
            ImgDataPreprocessor(**kwargs)
        assert isinstance(info.value, AssertionError)
    pre = ImgDataPreprocessor(mean=(1, 1, 1), std=(1, 1, 1))
    with pytest.raises(AssertionError, match="If the mean has 3 values"):
        pre({"inputs": [torch.ones(10, 10)]})


def test_model_rejects_a_preprocessor_of_the_wrong_type():
    class M(BaseModel):
        def forward(self, x, mode="tensor"):
            return x

    with pytest.raises(TypeError, match="data_preprocessor should be an nn.Module, a dict"):
        M(data_preprocessor=[BaseDataPreprocessor()])
    built = M(data_preprocessor=dict(type=ImgDataPreprocessor, mean=[0.5], std=[2.0]))
    assert built.data_preprocessor.std.item() == 2.0  # type may be the class itself

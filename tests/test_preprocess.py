from collections import OrderedDict, defaultdict, namedtuple

import pytest
import torch
from torch import nn

from engine.model.data_preprocessor import BaseDataPreprocessor, ImgDataPreprocessor

Pair = namedtuple("Pair", ["image", "label"])


def test_cast_data_keeps_structure_and_moves_tensors_to_module_device():
    model = nn.Module()
    model.data_preprocessor = BaseDataPreprocessor()
    model.to("meta")  # the preprocessor follows its parent
    pre = model.data_preprocessor
    assert pre.device == torch.device("meta")
    batch = {
        "inputs": torch.ones(2, 3),
        "nested": [torch.zeros(1), (torch.zeros(2), "name", 7)],
        "pair": Pair(torch.ones(1), 3),
        "ordered": OrderedDict(a=torch.ones(1)),
        "default": defaultdict(list, a=torch.ones(1)),
        "meta": None,
    }
    out = pre(batch)
    assert set(out) == set(batch)
    assert out["inputs"].device.type == "meta" and out["inputs"].shape == (2, 3)
    assert isinstance(out["nested"], list) and isinstance(out["nested"][1], tuple)
    assert out["nested"][0].device.type == "meta" and out["nested"][1][0].device.type == "meta"
    assert out["nested"][1][1:] == ("name", 7)
    assert isinstance(out["pair"], Pair) and out["pair"].label == 3
    assert out["pair"].image.device.type == "meta"
    assert type(out["ordered"]) is OrderedDict and out["ordered"]["a"].device.type == "meta"
    assert type(out["default"]) is defaultdict and out["default"].default_factory is list
    assert out["default"]["a"].device.type == "meta" and batch["default"]["a"].device.type == "cpu"
    assert out["meta"] is None


def test_cpu_tensor_on_cpu_stays_identical_and_non_tensors_pass_through():
    pre = BaseDataPreprocessor(non_blocking=True)
    assert pre.device == torch.device("cpu")
    x, obj = torch.arange(3), object()
    out = pre.cast_data((x, obj, "s", 1.5))
    assert out[0] is x and out[1] is obj and out[2:] == ("s", 1.5)
    assert pre(torch.ones(1)).device == torch.device("cpu")
    assert pre.state_dict() == {}  # the device anchor never enters checkpoints


def test_training_flag_reaches_subclass():
    class Augment(BaseDataPreprocessor):
        def forward(self, data, training=False):
            data = super().forward(data, training)
            return data * 2 if training else data

    model = nn.Module()
    model.data_preprocessor = Augment()
    x = torch.ones(2)
    assert torch.equal(model.data_preprocessor(x, training=True), x * 2)
    assert torch.equal(model.data_preprocessor(x), x)
    assert torch.equal(model.data_preprocessor(x, training=False), x)


def test_single_value_mean_std():
    pre = ImgDataPreprocessor(mean=[10.0], std=[4.0])
    x = torch.tensor([[[[2.0, 18.0]], [[10.0, 30.0]]]])  # (1, 2, 1, 2): any channel count
    out = pre({"inputs": x})
    assert torch.equal(out["inputs"], torch.tensor([[[[-2.0, 2.0]], [[0.0, 5.0]]]]))
    assert set(out) == {"inputs"}  # no data_samples key invented for forward(**batch)


def test_three_value_mean_std_uint8_to_float():
    pre = ImgDataPreprocessor(mean=(1, 2, 3), std=(1, 2, 4))
    x = torch.tensor([5, 6, 11], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = pre({"inputs": x, "data_samples": ["a", "b"]})
    assert out["inputs"].dtype == torch.float32 and out["inputs"].shape == (2, 3, 2, 2)
    expected = torch.tensor([4.0, 2.0, 2.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    assert torch.equal(out["inputs"], expected)
    assert out["data_samples"] == ["a", "b"]


def test_no_normalisation_just_casts():
    x = torch.randint(0, 255, (1, 3, 2, 2), dtype=torch.uint8)
    out = ImgDataPreprocessor()({"inputs": x})["inputs"]
    assert out.dtype == torch.float32 and torch.equal(out, x.float())


@pytest.mark.parametrize("flag", ["bgr_to_rgb", "rgb_to_bgr"])
def test_channel_flip(flag):
    x = torch.stack([torch.full((2, 2), v) for v in (1.0, 2.0, 3.0)]).unsqueeze(0)
    out = ImgDataPreprocessor(**{flag: True})({"inputs": x})["inputs"]
    assert out[0, :, 0, 0].tolist() == [3.0, 2.0, 1.0]
    # the flip precedes normalisation: the mean for channel 0 applies to the old channel 2
    out = ImgDataPreprocessor(mean=[3, 0, 0], std=[1, 1, 1], **{flag: True})({"inputs": x})
    assert out["inputs"][0, :, 0, 0].tolist() == [0.0, 2.0, 1.0]


def test_flip_skips_non_three_channel_inputs():
    x = torch.arange(4.0).view(1, 4, 1, 1)
    assert torch.equal(ImgDataPreprocessor(bgr_to_rgb=True)({"inputs": x})["inputs"], x)


def test_list_of_images_is_padded_to_divisor():
    a = torch.randint(0, 255, (3, 5, 7), dtype=torch.uint8)
    b = torch.randint(0, 255, (3, 6, 4), dtype=torch.uint8)
    pre = ImgDataPreprocessor(pad_size_divisor=4, pad_value=-1)
    out = pre({"inputs": [a, b], "data_samples": [0, 1]})
    x = out["inputs"]
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x[0, :, :5, :7], a.float()) and torch.equal(x[1, :, :6, :4], b.float())
    pad = torch.ones(2, 3, 8, 8, dtype=torch.bool)
    pad[0, :, :5, :7] = False
    pad[1, :, :6, :4] = False
    assert (x[pad] == -1).all()


def test_batched_tensor_padded_only_with_divisor():
    x = torch.ones(2, 1, 5, 6)
    assert ImgDataPreprocessor()({"inputs": x})["inputs"].shape == (2, 1, 5, 6)
    out = ImgDataPreprocessor(pad_size_divisor=4, pad_value=7)({"inputs": x})["inputs"]
    assert (
        out.shape == (2, 1, 8, 8) and (out[:, :, 5:] == 7).all() and (out[:, :, :, 6:] == 7).all()
    )
    assert (out[:, :, :5, :6] == 1).all()


def test_tuple_batch_form():
    pre = ImgDataPreprocessor(mean=[1.0], std=[2.0])
    labels = torch.tensor([0, 1])
    out = pre((torch.full((2, 3, 1, 1), 5.0), labels, "extra"))
    assert type(out) is tuple and len(out) == 3
    assert torch.equal(out[0], torch.full((2, 3, 1, 1), 2.0))
    assert out[1] is labels and out[2] == "extra"
    out = pre([torch.full((1, 1, 1, 1), 3.0), labels])
    assert type(out) is list and out[0].item() == 1.0
    assert isinstance(pre(Pair(torch.ones(1, 1, 1, 1), 4)), Pair)


def test_stats_are_nonpersistent_buffers_that_follow_device_and_stay_float32():
    model = nn.Module()
    model.data_preprocessor = ImgDataPreprocessor(mean=[123.675, 116.28, 103.53], std=[1, 1, 1])
    assert model.state_dict() == {}
    model.bfloat16()
    assert model.data_preprocessor.mean.dtype == torch.float32
    assert model.data_preprocessor.mean.flatten().tolist() == pytest.approx(
        [123.675, 116.28, 103.53]
    )
    model.to("meta")
    assert model.data_preprocessor.mean.device.type == "meta"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mean=[1, 2]), "mean and std"),
        (dict(std=[1]), "mean and std"),
        (dict(mean=[1, 2], std=[1, 2]), "`mean` should have 1 or 3 values"),
        (dict(mean=[1], std=[1, 2, 3, 4]), "`std` should have 1 or 3 values"),
        (dict(mean=[0], std=[0]), "std must be non-zero"),
        (dict(bgr_to_rgb=True, rgb_to_bgr=True), "bgr_to_rgb and rgb_to_bgr"),
        (dict(pad_size_divisor=0), "pad_size_divisor"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImgDataPreprocessor(**kwargs)


def test_channel_mismatch_names_both():
    pre = ImgDataPreprocessor(mean=[1, 2, 3], std=[1, 1, 1])
    with pytest.raises(ValueError, match="3 values.*1 channels"):
        pre({"inputs": torch.ones(1, 1, 2, 2)})
    with pytest.raises(ValueError, match="3 values.*4 channels"):
        pre({"inputs": [torch.ones(4, 2, 2)]})


@pytest.mark.parametrize(
    "inputs, match",
    [
        ("image.png", "got str"),
        (None, "got NoneType"),
        ([torch.ones(3, 2, 2), "x"], r"got list of \[.Tensor., .str.\]"),
        ([], "got empty list"),
    ],
)
def test_bad_inputs_type_error_names_type(inputs, match):
    with pytest.raises(TypeError, match=match):
        ImgDataPreprocessor()({"inputs": inputs})


def test_bad_shapes_and_batches():
    pre = ImgDataPreprocessor()
    with pytest.raises(ValueError, match="NCHW"):
        pre({"inputs": torch.ones(3, 2, 2)})
    with pytest.raises(ValueError, match="CHW"):
        pre({"inputs": [torch.ones(1, 3, 2, 2)]})
    with pytest.raises(ValueError, match="'inputs' key"):
        pre({"img": torch.ones(1, 3, 2, 2)})
    with pytest.raises(TypeError, match="got Tensor"):
        pre(torch.ones(1, 3, 2, 2))
    with pytest.raises(ValueError, match="one channel count"):
        pre({"inputs": [torch.ones(3, 2, 2), torch.ones(1, 2, 2)]})

"""engine.structures: data elements, their tensor methods, collation and device moves."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from engine.model import BaseDataPreprocessor
from engine.structures import BaseDataElement, InstanceData, LabelData, PixelData


def test_metainfo_and_data_fields_are_kept_apart():
    sample = BaseDataElement(metainfo=dict(img_id=7), score=torch.tensor([0.5]))
    sample.label = torch.tensor([2])
    assert sorted(sample.keys()) == ["label", "score"] and sample.metainfo_keys() == ["img_id"]
    assert sample.metainfo == {"img_id": 7} and "img_id" in sample and "nope" not in sample
    with pytest.raises(AttributeError, match="already a metainfo field"):
        sample.img_id = 8
    with pytest.raises(AssertionError):  # MMEngine raises AssertionError for a wrong type
        sample.set_field(3, "x", dtype=torch.Tensor)
    assert sample.pop("label").tolist() == [2] and sample.pop("label", None) is None
    with pytest.raises(KeyError):
        sample.pop("label")


def test_tensor_methods_return_new_elements_with_converted_fields():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    sample = BaseDataElement(metainfo=dict(id=1), w=w * 3, inner=BaseDataElement(v=w * 2))
    detached = sample.detach()
    assert not detached.w.requires_grad and not detached.inner.v.requires_grad
    assert sample.w.requires_grad  # the original is untouched
    as_numpy = sample.numpy()
    assert isinstance(as_numpy.w, np.ndarray) and as_numpy.w.tolist() == [3.0, 6.0]
    assert as_numpy.inner.v.tolist() == [2.0, 4.0] and as_numpy.metainfo == {"id": 1}
    back = as_numpy.to_tensor()
    assert torch.equal(back.w, torch.tensor([3.0, 6.0]))
    moved = sample.to(torch.float64)
    assert moved.w.dtype == torch.float64 and moved.inner.v.dtype == torch.float64
    assert sample.to_dict()["inner"] == {"v": sample.inner.v}


def test_instance_data_selects_every_field_together():
    inst = InstanceData(
        boxes=torch.arange(12.0).view(4, 3),
        labels=np.array([5, 6, 7, 8]),
        names=["a", "b", "c", "d"],
    )
    picked = inst[torch.tensor([True, False, True, False])]
    assert picked.boxes.tolist() == [[0.0, 1.0, 2.0], [6.0, 7.0, 8.0]]
    assert picked.labels.tolist() == [5, 7] and picked.names == ["a", "c"]
    assert inst[[3, 1]].names == ["d", "b"] and len(inst[1]) == 1 and inst[1].labels.tolist() == [6]
    joined = InstanceData.cat([inst[:1], inst[3:]])
    assert joined.labels.tolist() == [5, 8] and joined.names == ["a", "d"]
    with pytest.raises(ValueError, match="length 2, the other fields have 4"):
        inst.scores = torch.zeros(2)
    with pytest.raises(IndexError):
        inst[4]


def test_pixel_data_crops_all_maps_and_adds_the_channel_dim():
    pix = PixelData(seg=torch.arange(20).view(4, 5))
    assert pix.seg.shape == (1, 4, 5) and pix.shape == (4, 5)
    crop = pix[1:3, 2]
    assert crop.shape == (2, 1) and crop.seg.flatten().tolist() == [7, 12]
    with pytest.raises(ValueError, match=r"\(2, 2\) \(H, W\); the other fields are \(4, 5\)"):
        pix.other = torch.zeros(2, 2)


def test_label_data_one_hot_round_trip():
    onehot = LabelData.label_to_onehot(torch.tensor([1, 3]), num_classes=5)
    assert onehot.tolist() == [0, 1, 0, 1, 0]
    assert LabelData.onehot_to_label(onehot).tolist() == [1, 3]
    with pytest.raises(ValueError, match="out of range"):
        LabelData.label_to_onehot(torch.tensor([5]), num_classes=5)


def test_repr_lists_metainfo_then_data():
    text = repr(BaseDataElement(metainfo=dict(shape=(2, 3)), x=torch.tensor([1])))
    assert (
        "META INFORMATION\n    shape: (2, 3)" in text and "DATA FIELDS\n    x: tensor([1])" in text
    )


def test_default_collate_keeps_data_elements_as_a_list():
    samples = [
        {
            "inputs": torch.full((2,), float(i)),
            "data_samples": InstanceData(b=torch.zeros(i + 1, 4)),
        }
        for i in range(3)
    ]
    (batch,) = list(DataLoader(samples, batch_size=3))
    assert batch["inputs"].shape == (3, 2)
    assert isinstance(batch["data_samples"], list) and len(batch["data_samples"]) == 3
    assert [len(s) for s in batch["data_samples"]] == [1, 2, 3]


def test_preprocessor_moves_data_elements_with_their_to():
    pre = BaseDataPreprocessor().to("meta")
    out = pre(
        {
            "inputs": torch.zeros(2),
            "data_samples": [BaseDataElement(metainfo=dict(i=0), y=torch.ones(1))],
        }
    )
    (sample,) = out["data_samples"]
    assert out["inputs"].device.type == "meta" and sample.y.device.type == "meta"
    assert sample.metainfo == {"i": 0}

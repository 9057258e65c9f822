import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from engine import BaseModel, ImgDataPreprocessor, OptimWrapper
from models import MMEngineToyModel


def seed_data():
    torch.manual_seed(0)
    xs = torch.randn(50, 1)
    train_dataset = [(x, 2 * x + 1) for x in xs]
    return DataLoader(train_dataset, batch_size=2)


@pytest.mark.parametrize("use_accelerator", [False, True])
def test_seed_toy_model_matches_plain_pytorch(use_accelerator):
    torch.manual_seed(1)
    model = MMEngineToyModel()
    reference = copy.deepcopy(model.linear)
    accelerator = None
    if use_accelerator:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01), accelerator)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.01)
    loader = seed_data()
    for _ in range(5):
        for batch in loader:
            log_vars = model.train_step(batch, optim_wrapper)
            img, label = batch
            feat = reference(img)
            loss = (feat - label).pow(2).mean() + (feat - label).abs().mean()
            ref_opt.zero_grad()
            loss.backward()
            ref_opt.step()
            assert torch.allclose(log_vars["loss"], loss.detach(), atol=1e-6)
    assert torch.allclose(model.linear.weight, reference.weight, atol=1e-6)
    assert torch.allclose(model.linear.bias, reference.bias, atol=1e-6)
    # The model did learn y = 2x + 1, so the comparison is not between two untouched models.
    assert abs(model.linear.weight.item() - 2) < 0.5


def test_seed_model_predict_and_val_step():
    model = MMEngineToyModel()
    batch = [torch.ones(3, 1), torch.ones(3, 1)]
    preds = model.val_step(batch)
    assert isinstance(preds, list) and len(preds) == 3
    assert torch.equal(torch.stack(preds), model.linear(torch.ones(3, 1)))
    assert len(model.test_step(batch)) == 3


class DictModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(2.0))

    def forward(self, x, mode):
        return {"loss_a": self.w * x, "loss_list": [self.w * x, 2 * self.w * x], "acc": x * 10}


def test_parse_losses_sums_loss_keys_by_mean_and_logs_the_rest():
    model = DictModel()
    losses = model(x=torch.tensor([1.0, 3.0]), mode="loss")
    loss, log_vars = model.parse_losses(losses)
    # loss_a mean = 2*2 = 4; loss_list = mean(2,6) + mean(4,12) = 4 + 8 = 12; acc not summed.
    assert loss.item() == pytest.approx(16.0)
    assert list(log_vars) == ["loss", "loss_a", "loss_list", "acc"]
    assert log_vars["acc"].item() == pytest.approx(20.0)
    assert not any(v.requires_grad for v in log_vars.values())
    assert loss.requires_grad


def test_dict_batch_is_passed_as_keywords():
    model = DictModel()
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step({"x": torch.tensor([1.0])}, ow)
    # gradient of loss = w*x + (w*x + 2w*x) at x=1 is 4 -> w = 2 - 0.4
    assert model.w.item() == pytest.approx(1.6)
    assert log_vars["loss"].item() == pytest.approx(8.0)


@pytest.mark.parametrize(
    "losses, match",
    [
        ({"loss": 1.0}, "'loss' is a float"),
        ({"loss_x": [torch.tensor(1.0), "a"]}, "'loss_x' is a list"),
        (torch.tensor(1.0), "must return a dict"),
        ({"acc": torch.tensor(1.0)}, "no key containing 'loss'"),
    ],
)
def test_parse_losses_errors_name_the_problem(losses, match):
    with pytest.raises((TypeError, ValueError), match=match):
        DictModel().parse_losses(losses)


def test_unsupported_batch_type_is_a_type_error_naming_it():
    model = DictModel()
    with pytest.raises(TypeError, match="got Tensor"):
        model.val_step(torch.ones(2))


def test_data_preprocessor_dict_is_built():
    class M(BaseModel):
        def __init__(self):
            super().__init__(
                data_preprocessor=dict(type="ImgDataPreprocessor", mean=[0.5], std=[2.0])
            )

    assert isinstance(M().data_preprocessor, ImgDataPreprocessor)
    with pytest.raises(ValueError, match="unknown"):

        class N(BaseModel):
            def __init__(self):
                super().__init__(data_preprocessor=dict(type="Nope"))

        N()


def test_training_flag_reaches_the_preprocessor():
    seen = []

    class Aug(nn.Module):
        def forward(self, data, training=False):
            seen.append(training)
            return data

    model = DictModel()
    model.data_preprocessor = Aug()
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    model.train_step({"x": torch.tensor([1.0])}, ow)
    model.val_step({"x": torch.tensor([1.0])})
    assert seen == [True, False]

import pytest
import torch
from accelerate import Accelerator
from torch import nn

from engine import OptimWrapper, OptimWrapperDict
from engine.optim.builder import amp_precision, build_optim_wrapper


def make_accelerator(kind, **kwargs):
    if kind == "none":
        return None
    if kind == "ga2":  # an Accelerator that divides by its own fixed count
        return Accelerator(cpu=True, gradient_accumulation_steps=2, **kwargs)
    return Accelerator(cpu=True, **kwargs)


@pytest.mark.parametrize("kind", ["none", "plain", "ga2"])
def test_accumulation_updates_after_3_6_9_and_10_each_by_exactly_one(kind):
    p = nn.Parameter(torch.tensor(0.0))
    ow = OptimWrapper(torch.optim.SGD([p], lr=1.0), make_accelerator(kind), accumulative_counts=3)
    ow.initialize_count_status(None, 0, 10)
    moved_at = []
    for it in range(1, 11):
        before = p.item()
        with ow.optim_context(nn.Module()):
            loss = p * 1.0  # d loss / d p == 1
        ow.update_params(loss)
        if p.item() != before:
            moved_at.append(it)
            assert before - p.item() == 1.0
    assert moved_at == [3, 6, 9, 10]
    assert p.item() == -4.0


@pytest.mark.parametrize("kind", ["none", "plain", "ga2"])
def test_accumulated_update_equals_one_batch_of_the_union(kind):
    torch.manual_seed(0)
    x, y = torch.randn(12, 4), torch.randn(12, 1)
    acc_model, big_model = nn.Linear(4, 1), nn.Linear(4, 1)
    big_model.load_state_dict(acc_model.state_dict())
    ow = OptimWrapper(
        torch.optim.SGD(acc_model.parameters(), lr=0.1),
        make_accelerator(kind),
        accumulative_counts=3,
    )
    ow.initialize_count_status(acc_model, 0, 3)
    for chunk_x, chunk_y in zip(x.chunk(3), y.chunk(3)):
        ow.update_params(nn.functional.mse_loss(acc_model(chunk_x), chunk_y))
    big_opt = torch.optim.SGD(big_model.parameters(), lr=0.1)
    nn.functional.mse_loss(big_model(x), y).backward()
    big_opt.step()
    for a, b in zip(acc_model.parameters(), big_model.parameters()):
        assert torch.allclose(a, b, atol=1e-7)


def test_partial_last_window_is_the_mean_of_its_own_micro_batches():
    # max 5, window 3: the last window holds 2 micro-batches and must divide by 2.
    p = nn.Parameter(torch.tensor(0.0))
    ow = OptimWrapper(torch.optim.SGD([p], lr=1.0), accumulative_counts=3)
    ow.initialize_count_status(None, 0, 5)
    for _ in range(3):
        ow.update_params(p * 3.0)
    assert p.item() == -3.0
    ow.update_params(p * 1.0)
    assert p.item() == -3.0
    ow.update_params(p * 5.0)
    assert p.item() == -6.0  # mean gradient (1 + 5) / 2 = 3


def test_bf16_autocast_is_active_inside_optim_context_only():
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    model = nn.Linear(4, 4)
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accelerator)
    with ow.optim_context(model):
        assert torch.is_autocast_enabled("cpu")
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")
    assert model(torch.randn(2, 4)).dtype == torch.float32
    assert accelerator.scaler is None  # a loss scaler exists only for fp16


@pytest.mark.parametrize("kind", ["none", "plain"])
def test_clip_by_norm_only_on_update_steps_and_norm_is_a_tensor(kind):
    p = nn.Parameter(torch.tensor([3.0, 4.0]))
    ow = OptimWrapper(
        torch.optim.SGD([p], lr=1.0),
        make_accelerator(kind),
        accumulative_counts=2,
        clip_grad=dict(max_norm=1.0),
    )
    ow.initialize_count_status(None, 0, 4)
    ow.update_params((p * torch.tensor([3.0, 4.0])).sum())
    assert ow.last_grad_norm is None  # not an update step
    assert torch.equal(p.detach(), torch.tensor([3.0, 4.0]))
    ow.update_params((p * torch.tensor([3.0, 4.0])).sum())
    assert isinstance(ow.last_grad_norm, torch.Tensor)
    assert ow.last_grad_norm.item() == pytest.approx(5.0)
    # gradient (3, 4) clipped to norm 1 -> (0.6, 0.8)
    assert torch.allclose(p.detach(), torch.tensor([2.4, 3.2]))


@pytest.mark.parametrize(
    "clip_grad",
    # the second is how MMEngine's optimizer-wrapper tutorial writes it: no type
    [dict(type="value", clip_value=0.5), dict(clip_value=0.5)],
)
def test_clip_by_value(clip_grad):
    p = nn.Parameter(torch.tensor([0.0, 0.0]))
    ow = OptimWrapper(torch.optim.SGD([p], lr=1.0), Accelerator(cpu=True), clip_grad=clip_grad)
    ow.update_params((p * torch.tensor([2.0, -0.25])).sum())
    assert torch.allclose(p.detach(), torch.tensor([-0.5, 0.25]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(accumulative_counts=0), "accumulative_counts must be an int >= 1"),
        (dict(clip_grad=dict(type="bogus")), "accepted: 'norm'"),
        (dict(clip_grad=dict(norm_type=2)), "needs max_norm"),
        (dict(clip_grad=1.0), "clip_grad must be a dict"),
    ],
)
def test_bad_wrapper_arguments(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        OptimWrapper(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), **kwargs)


def test_lr_momentum_and_state_dict_round_trip():
    p = nn.Parameter(torch.ones(2))
    ow = OptimWrapper(torch.optim.SGD([p], lr=0.1, momentum=0.9), accumulative_counts=2)
    ow.initialize_count_status(None, 0, 7)
    assert ow.get_lr() == {"lr": [0.1]}
    assert ow.get_momentum() == {"momentum": [0.9]}
    ow.update_params(p.sum())
    ow.update_params(p.sum())
    ow.update_params(p.sum())
    state = ow.state_dict()
    # MMEngine's contract: the optimizer's own state dict; the window lives in TrainState.
    assert state == ow.optimizer.state_dict()
    q = nn.Parameter(p.detach().clone())
    other = OptimWrapper(torch.optim.SGD([q], lr=0.1, momentum=0.9), accumulative_counts=2)
    other.load_state_dict(state)
    other.initialize_count_status(None, 3, 7)
    assert other._inner_count == 3 and other.should_sync()
    assert torch.equal(other.optimizer.state_dict()["state"][0]["momentum_buffer"], torch.ones(2))
    adam = OptimWrapper(torch.optim.Adam([q], lr=0.1, betas=(0.8, 0.99)))
    assert adam.get_momentum() == {"momentum": [0.8]}


class GAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.generator = nn.Linear(2, 2)
        self.discriminator = nn.Linear(2, 1)


def test_optim_wrapper_dict_members_lr_state_and_ambiguous_calls():
    gan = GAN()
    ow = build_optim_wrapper(
        gan,
        dict(
            generator=dict(optimizer=dict(type="Adam", lr=2e-4)),
            discriminator=dict(optimizer=dict(type="SGD", lr=1e-3)),
        ),
    )
    assert isinstance(ow, OptimWrapperDict)
    assert ow["generator"].param_groups[0]["params"][0] is gan.generator.weight
    assert ow.get_lr() == {"generator.lr": [2e-4], "discriminator.lr": [1e-3]}
    for p in gan.parameters():
        p.grad = torch.ones_like(p)
    ow.zero_grad()
    assert all(p.grad is None for p in gan.parameters())
    state = ow.state_dict()
    assert set(state) == {"generator", "discriminator"} and "param_groups" in state["generator"]
    ow.load_state_dict(state)
    for call in ("update_params", "backward", "step", "optim_context"):
        with pytest.raises(
            NotImplementedError, match=r"call it on a member, e.g. optim_wrapper\['generator'\]"
        ):
            getattr(ow, call)(torch.tensor(1.0))


def test_build_from_mmengine_dicts():
    model = nn.Linear(2, 2)
    ow = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(type="SGD", lr=0.01, momentum=0.9),
            accumulative_counts=4,
            clip_grad=dict(max_norm=1),
        ),
    )
    assert isinstance(ow.optimizer, torch.optim.SGD) and ow.accumulative_counts == 4
    amp = dict(type="AmpOptimWrapper", dtype="bfloat16", optimizer=dict(type="AdamW", lr=1e-3))
    assert amp_precision(amp) == "bf16"
    assert amp_precision(dict(type="AmpOptimWrapper", optimizer=dict(type="SGD", lr=1))) == "fp16"
    assert isinstance(build_optim_wrapper(model, amp).optimizer, torch.optim.AdamW)
    with pytest.raises(ValueError, match="not a torch.optim optimizer; accepted: .*SGD"):
        build_optim_wrapper(model, dict(optimizer=dict(type="Nope", lr=1)))
    with pytest.raises(ValueError, match="neither 'optimizer' nor a sub-module"):
        build_optim_wrapper(model, dict(gen=dict(optimizer=dict(type="SGD", lr=1))))
    with pytest.raises(ValueError, match="unsupported keys"):
        build_optim_wrapper(model, dict(optimizer=dict(type="SGD", lr=1), paramwise={}))

"""The optim wrapper's clip_grad/accumulative_counts written into DeepSpeed's config, conflicts
refused in one line, and the OptimWrapper leaving clip and step to DeepSpeed.

DeepSpeed needs a GPU (and is not installed here): the configs are Accelerate's real
``DeepSpeedPlugin`` objects, and the update test drives the OptimWrapper through
Accelerate's real ``DeepSpeedEngineWrapper``/``DeepSpeedOptimizerWrapper`` around a stand-in
engine that does what DeepSpeed's engine does (divide the loss by its
gradient_accumulation_steps; at the boundary clip by gradient_clipping, step, zero).
"""

from __future__ import annotations

import contextlib
import types

import pytest
import torch
from accelerate import Accelerator
from accelerate.utils import DeepSpeedPlugin, DistributedType
from accelerate.utils.deepspeed import DeepSpeedEngineWrapper, DeepSpeedOptimizerWrapper
from torch import nn

from engine.optim import OptimWrapper, OptimWrapperDict
from engine.runner.deepspeed_config import (
    configure_deepspeed,
    deepspeed_updates,
    loader_batch_size,
)

AUTO_CFG = {
    "zero_optimization": {"stage": 2},
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "train_micro_batch_size_per_gpu": "auto",
}


def _updates(config, accumulative_counts=1, clip_grad=None, batch_size=4):
    return deepspeed_updates(
        config, accumulative_counts=accumulative_counts, clip_grad=clip_grad, batch_size=batch_size
    )


def test_auto_values_are_filled_from_the_optim_wrapper():
    updates = _updates(AUTO_CFG, accumulative_counts=4, clip_grad=dict(max_norm=0.5), batch_size=8)
    assert updates == {
        "gradient_accumulation_steps": 4,
        "gradient_clipping": 0.5,
        "train_micro_batch_size_per_gpu": 8,
    }


def test_auto_clipping_without_clip_grad_is_off_not_accelerates_default_of_one():
    # Accelerate fills an 'auto' gradient_clipping with 1.0 when nothing else does.
    assert _updates(AUTO_CFG)["gradient_clipping"] == 0.0


def test_launch_flag_plugin_gets_the_wrapper_settings_and_accelerates_steps():
    # `accelerate launch --use_deepspeed --zero_stage 2` builds this plugin: 'auto' values.
    plugin = DeepSpeedPlugin(zero_stage=2)
    acc = types.SimpleNamespace(
        deepspeed_plugin=plugin, split_batches=False, num_processes=2, gradient_accumulation_steps=1
    )
    ow = OptimWrapper(_sgd(), accumulative_counts=3, clip_grad=dict(max_norm=2.0))
    configure_deepspeed(acc, ow, batch_size=16)
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == 3
    assert plugin.deepspeed_config["gradient_clipping"] == 2.0
    assert plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == 16
    assert (plugin.gradient_accumulation_steps, plugin.gradient_clipping) == (3, 2.0)
    assert acc.gradient_accumulation_steps == 3


def test_split_batches_gives_deepspeed_the_per_process_batch():
    plugin = DeepSpeedPlugin(zero_stage=2)
    acc = types.SimpleNamespace(
        deepspeed_plugin=plugin, split_batches=True, num_processes=4, gradient_accumulation_steps=1
    )
    configure_deepspeed(acc, OptimWrapper(_sgd()), batch_size=32)
    assert plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == 8


def test_explicit_equal_values_are_kept():
    cfg = {**AUTO_CFG, "gradient_accumulation_steps": 2, "gradient_clipping": 1.0}
    assert _updates(cfg, 2, dict(max_norm=1.0)) == {"train_micro_batch_size_per_gpu": 4}


@pytest.mark.parametrize(
    ("config", "counts", "clip", "names"),
    [
        ({"gradient_accumulation_steps": 8}, 4, None, ["gradient_accumulation_steps=8", "accumulative_counts=4"]),
        ({"gradient_clipping": 1.0}, 1, None, ["gradient_clipping=1.0", "clip_grad=None"]),
        ({"gradient_clipping": 1.0}, 1, dict(max_norm=0.5), ["gradient_clipping=1.0", "max_norm=0.5"]),
        ({"gradient_clipping": 0.0}, 1, dict(max_norm=0.5), ["gradient_clipping=0.0", "max_norm=0.5"]),
    ],
)  # fmt: skip
def test_an_explicit_conflicting_value_is_a_one_line_error_naming_both(config, counts, clip, names):
    with pytest.raises(ValueError) as err:
        _updates(config, counts, clip)
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in names), message


def test_a_config_file_without_accumulation_steps_conflicts_with_accumulation():
    # Accelerate writes gradient_accumulation_steps=1 into a config file that omits it.
    plugin = DeepSpeedPlugin(hf_ds_config={"zero_optimization": {"stage": 3}})
    acc = types.SimpleNamespace(deepspeed_plugin=plugin, split_batches=False, num_processes=1)
    with pytest.raises(ValueError, match=r"gradient_accumulation_steps=1 .*accumulative_counts=2"):
        configure_deepspeed(acc, OptimWrapper(_sgd(), accumulative_counts=2), batch_size=4)


@pytest.mark.parametrize(
    ("clip", "instead"),
    [
        (dict(type="value", clip_value=1.0), "clip_grad=dict(max_norm=...)"),
        (dict(max_norm=1.0, norm_type=1), "norm_type=2"),
    ],
)
def test_clipping_deepspeed_cannot_do_is_refused_with_what_to_use(clip, instead):
    with pytest.raises(ValueError) as err:
        _updates(AUTO_CFG, 1, clip)
    assert "\n" not in str(err.value) and instead in str(err.value)


@pytest.mark.parametrize("section", ["optimizer", "scheduler"])
def test_an_optimizer_or_scheduler_section_is_refused(section):
    with pytest.raises(ValueError, match=f"'{section}' section.*remove"):
        _updates({**AUTO_CFG, section: {"type": "AdamW"}})


def test_auto_micro_batch_without_a_known_batch_size_names_the_setting():
    with pytest.raises(ValueError, match="set train_micro_batch_size_per_gpu"):
        _updates(AUTO_CFG, batch_size=None)


def test_several_optimizers_are_refused_in_one_line():
    acc = types.SimpleNamespace(deepspeed_plugin=DeepSpeedPlugin(zero_stage=2))
    owd = OptimWrapperDict(g=OptimWrapper(_sgd()), d=OptimWrapper(_sgd()))
    with pytest.raises(ValueError, match="one model with one optimizer, got 2"):
        configure_deepspeed(acc, owd, batch_size=4)


def test_no_deepspeed_plugin_is_a_no_op():
    acc = types.SimpleNamespace(deepspeed_plugin=None, gradient_accumulation_steps=1)
    configure_deepspeed(acc, OptimWrapper(_sgd(), accumulative_counts=4), batch_size=4)
    assert acc.gradient_accumulation_steps == 1


def test_loader_batch_size():
    assert loader_batch_size(dict(batch_size=6)) == 6
    assert loader_batch_size(torch.utils.data.DataLoader(list(range(4)), batch_size=3)) == 3
    assert loader_batch_size(None) is None


# -- the OptimWrapper under DeepSpeed ------------------------------------------------------
def _sgd(model=None):
    model = model or nn.Linear(2, 1)
    return torch.optim.SGD(model.parameters(), lr=0.1)


class _Engine:
    """What DeepSpeed's engine does with Accelerate's calls, on plain tensors."""

    def __init__(self, model, optimizer, config):
        self.model, self.optimizer, self.config = model, optimizer, config
        self.boundary, self.norm, self.steps = False, None, 0

    def set_gradient_accumulation_boundary(self, is_boundary):
        self.boundary = is_boundary

    def backward(self, loss):
        (loss / self.config["gradient_accumulation_steps"]).backward()

    def step(self):
        clip = self.config["gradient_clipping"]
        self.norm = nn.utils.clip_grad_norm_(
            self.model.parameters(), clip if clip > 0 else float("inf")
        )
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.steps += 1

    def get_global_grad_norm(self):
        return self.norm


class _DeepSpeedAccelerator:
    """Accelerator's DeepSpeed paths: backward hands the loss and the sync flag to DeepSpeed."""

    distributed_type = DistributedType.DEEPSPEED
    scaler, num_processes, native_amp, device = None, 1, False, torch.device("cpu")

    def __init__(self, engine, gas):
        self.deepspeed_engine_wrapped = DeepSpeedEngineWrapper(engine)
        self.gradient_accumulation_steps = gas
        self.gradient_state = types.SimpleNamespace(sync_gradients=True)
        self.gradient_state._set_sync_gradients = lambda v: setattr(
            self.gradient_state, "sync_gradients", v
        )

    def backward(self, loss, **kwargs):
        self.deepspeed_engine_wrapped.backward(loss, self.gradient_state.sync_gradients, **kwargs)

    def autocast(self):
        return contextlib.nullcontext()

    def clip_grad_norm_(self, *args, **kwargs):
        raise AssertionError("the OptimWrapper clipped: DeepSpeed does that inside backward")


def test_updates_under_deepspeed_are_exact_with_a_partial_window_and_clipping():
    torch.manual_seed(0)
    model, reference = nn.Linear(3, 1), nn.Linear(3, 1)
    reference.load_state_dict(model.state_dict())
    xs, ys = torch.randn(5, 4, 3), torch.randn(5, 4, 1)
    clip_grad, counts = dict(max_norm=0.05), 2

    config = {**AUTO_CFG, "train_micro_batch_size_per_gpu": 4}
    config.update(_updates(config, counts, clip_grad))
    inner = torch.optim.SGD(model.parameters(), lr=0.5)
    Accelerator(cpu=True)  # Accelerate's optimizer wrappers need its state to exist
    engine = _Engine(model, inner, config)
    acc = _DeepSpeedAccelerator(engine, gas=config["gradient_accumulation_steps"])
    ow = OptimWrapper(DeepSpeedOptimizerWrapper(inner), acc, counts, clip_grad)
    ow.initialize_count_status(model, 0, 5)
    norms = []
    for x, y in zip(xs, ys):  # no optim_context: the wrapper still marks each window's end
        ow.update_params(nn.functional.mse_loss(model(x), y))
        if ow.should_update():
            norms.append(ow.last_grad_norm)

    opt = torch.optim.SGD(reference.parameters(), lr=0.5)
    expected = []
    for window in ([0, 1], [2, 3], [4]):  # the last window holds one micro-batch
        for i in window:
            (nn.functional.mse_loss(reference(xs[i]), ys[i]) / len(window)).backward()
        expected.append(nn.utils.clip_grad_norm_(reference.parameters(), 0.05))
        opt.step()
        opt.zero_grad()
    assert engine.steps == 3
    for got, want in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, atol=1e-7, rtol=0)
    assert all(n > 0.05 for n in expected)  # clipping was active
    torch.testing.assert_close(torch.stack(norms), torch.stack(expected))


@pytest.mark.parametrize(
    ("kind", "fsdp2", "name"),
    [
        (DistributedType.DEEPSPEED, False, "DeepSpeed"),
        (DistributedType.FSDP, True, "FSDP version 2"),
    ],
)
def test_separate_wrapping_under_deepspeed_or_fsdp2_is_refused_in_one_line(kind, fsdp2, name):
    from engine.model.wrappers import wrap_model

    acc = types.SimpleNamespace(distributed_type=kind, is_fsdp2=fsdp2, device=torch.device("cpu"))
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    with pytest.raises(ValueError) as err:
        wrap_model(model, acc, "separate")
    assert "\n" not in str(err.value) and name in str(err.value)
    assert "model_wrapper='fsdp2'" in str(err.value)

"""EMAHook and checkpoints: the evaluated (averaged) weights are the checkpoint's model weights,
the live ones are kept beside them, resume restores both exactly; bf16 averages move."""

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from engine import BaseMetric, Hook, Runner, TrainState
from engine.checkpoint import export_weights, load_weights
from engine.checkpoint.find import read_engine_state
from engine.hooks.ema_hook import EMAHook
from models import ParamModel

GRADS = [1.0, 2.0, 3.0]  # loss = p * x with SGD(lr=1): each batch moves p by -x
MOMENTUM = 0.25


class Seen(BaseMetric):
    """Reports the weight the model predicted with."""

    def process(self, data_batch, data_samples):
        self.results.extend(float(v) for v in data_samples)

    def compute_metrics(self, results):
        return {"p": results[-1]}


def loader(values):
    return DataLoader([{"x": torch.tensor([v])} for v in values], batch_size=None)


def expected_run(epochs):
    """(live weights, averages) after each update, by MMEngine's recursion: the first update
    copies the weights, later ones take ``(1 - m) * avg + m * p``."""
    live, avgs, p, avg = [], [], 0.0, None
    for _ in range(epochs):
        for g in GRADS:
            p -= g
            avg = p if avg is None else (1 - MOMENTUM) * avg + MOMENTUM * p
            live.append(p)
            avgs.append(avg)
    return live, avgs


def make_runner(work_dir, epochs=2, **kwargs):
    return Runner(
        model=ParamModel(),
        work_dir=work_dir,
        train_dataloader=loader(GRADS),
        val_dataloader=loader([0.0]),
        val_evaluator=Seen(),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=1.0)),
        custom_hooks=kwargs.pop("custom_hooks", [EMAHook(momentum=MOMENTUM)]),
        default_hooks=dict(
            logger=None,
            checkpoint=dict(type="CheckpointHook", interval=1, save_best="p", rule="greater"),
        ),
        **kwargs,
    )


def p_in(path):
    return load_file(str(path))["p"].item()


def test_checkpoints_hold_the_evaluated_average_and_the_live_weights(tmp_path):
    live, avgs = expected_run(2)
    runner = make_runner(tmp_path)
    runner.train()
    # Periodic checkpoints: the average after epochs 1 and 2 (-2.625, -6.779...)...
    assert p_in(tmp_path / "epoch_1" / "model.safetensors") == pytest.approx(avgs[2])
    assert p_in(tmp_path / "epoch_2" / "model.safetensors") == pytest.approx(avgs[5])
    # ...with the live weights beside them (MMEngine's ema_state_dict: module.* swapped).
    saved = read_engine_state(tmp_path / "epoch_1")["ema_state_dict"]
    assert saved["module.p"].item() == live[2] and saved["steps"].item() == 3
    # The best checkpoint (validation saw avgs[2] > avgs[5]) holds the weights that scored it.
    assert runner.state.best_scores and p_in(
        tmp_path / "best_p" / "model.safetensors"
    ) == pytest.approx(avgs[2])
    # Export writes the evaluated weights; the live model keeps training's weights.
    out = export_weights(tmp_path, tmp_path / "exported.safetensors")
    assert p_in(out) == pytest.approx(avgs[5]) and runner.model.p.item() == live[5]


def test_resume_restores_live_weights_and_average_exactly(tmp_path):
    live, avgs = expected_run(2)
    full = make_runner(tmp_path / "full")
    full.train()
    first = make_runner(tmp_path / "part", epochs=1)
    first.train()

    seen = []

    class AtStart(Hook):
        def before_train_epoch(self, runner):
            seen.append(runner.model.p.item())

    resumed = make_runner(
        tmp_path / "part", resume=True, custom_hooks=[EMAHook(momentum=MOMENTUM), AtStart()]
    )
    resumed.train()
    # Training continued from the live weights, not the average (-2.625) the model file holds.
    assert seen and seen[-1] == live[2]
    assert resumed.model.p.item() == live[5]
    ema, ema_full = resumed.hooks.get(EMAHook).ema_model, full.hooks.get(EMAHook).ema_model
    assert ema.module.p.item() == pytest.approx(avgs[5])
    assert torch.equal(ema.module.p, ema_full.module.p) and ema.steps.item() == 6


def test_load_from_evaluates_the_checkpoints_average(tmp_path):
    _, avgs = expected_run(1)
    make_runner(tmp_path / "a", epochs=1).train()
    evaluator = make_runner(tmp_path / "b")
    # What load_from does (called directly: Runner.val() loading it is issue 9 item 1's fix).
    load_weights(evaluator, tmp_path / "a" / "epoch_1")
    # A fresh EMAHook has averaged nothing yet: validation uses the loaded (averaged) weights.
    assert evaluator.val()["p"] == pytest.approx(avgs[2])


def test_bf16_model_average_moves_in_training(tmp_path):
    class Bf16(ParamModel):
        def __init__(self):
            super().__init__()
            self.p.data = torch.tensor(1.0, dtype=torch.bfloat16)

    steps = 60
    runner = Runner(
        model=Bf16(),
        work_dir=tmp_path,
        train_dataloader=loader([0.0, -0.25] + [0.0] * steps),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=1.0)),
        custom_hooks=[EMAHook(momentum=0.001)],
        default_hooks=dict(logger=None, checkpoint=dict(type="CheckpointHook", interval=1)),
    )
    runner.train()
    assert runner.model.p.dtype == torch.bfloat16 and runner.model.p.item() == 1.25
    expected = 1.0 + 0.25 * (1 - 0.999 ** (steps + 1))  # 1.0152; a bf16 average stays at 1.0
    shadow = runner.hooks.get(EMAHook).ema_model.fp32_average.p
    assert shadow.dtype == torch.float32 and shadow.item() == pytest.approx(expected, rel=1e-6)
    saved = load_file(str(tmp_path / "epoch_1" / "model.safetensors"))["p"]
    assert (
        saved.dtype == torch.bfloat16
        and saved.item() == torch.tensor(expected).bfloat16().item() > 1.0
    )


def test_hook_events_swap_mmengine_style_checkpoint_dicts():
    """MMEngine's contract on plain dicts: state_dict gets the average, ema_state_dict the
    live weights; loading swaps them back for the runner to load."""

    def bare_runner(model):
        return SimpleNamespace(
            _raw_model=model, model=model, optim_wrapper=None, state=TrainState(max_iters=9)
        )

    model = ParamModel()
    runner = bare_runner(model)
    hook = EMAHook(momentum=0.5)
    hook.before_run(runner)
    model.p.data.fill_(2.0)
    hook.after_train_iter(runner, 0)  # the first update copies: 2
    model.p.data.fill_(4.0)
    hook.after_train_iter(runner, 1)  # 0.5 * 2 + 0.5 * 4 = 3
    checkpoint = {"state_dict": model.state_dict()}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint["state_dict"]["p"].item() == 3.0
    assert checkpoint["ema_state_dict"]["module.p"].item() == 4.0
    assert model.p.item() == 4.0  # saving leaves the model as it was

    fresh = ParamModel()
    other = bare_runner(fresh)
    loader_hook = EMAHook(momentum=0.5)
    loader_hook.before_run(other)
    loader_hook.after_load_checkpoint(other, checkpoint)
    assert checkpoint["state_dict"]["p"].item() == 4.0  # what the runner then loads
    assert loader_hook.ema_model.module.p.item() == 3.0
    assert loader_hook.ema_model.steps.item() == 2

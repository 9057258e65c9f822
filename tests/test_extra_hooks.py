import pytest
import torch
from torch.utils.data import DataLoader

from engine import BaseMetric, Hook, Runner
from engine.hooks.early_stopping_hook import EarlyStoppingHook, infer_rule
from engine.hooks.ema_hook import EMAHook
from models import ParamModel


class Seen(BaseMetric):
    """Reports the weight the model predicted with."""

    def process(self, data_batch, data_samples):
        self.results.extend(float(v) for v in data_samples)

    def compute_metrics(self, results):
        return {"p": results[-1]}


def grads_loader(values):
    return DataLoader([{"x": torch.tensor([v])} for v in values], batch_size=None)


def test_ema_follows_the_formula_and_is_used_for_validation_only(tmp_path):
    grads = [1.0, 2.0, 3.0, 4.0]
    momentum = 0.25
    recorded = []

    class Record(Hook):
        def after_val_epoch(self, runner, metrics=None):
            recorded.append((metrics["p"], runner.model.p.item()))

    runner = Runner(
        model=ParamModel(),
        work_dir=tmp_path,
        train_dataloader=grads_loader(grads),
        val_dataloader=grads_loader([0.0]),
        val_evaluator=Seen(),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=1.0), accumulative_counts=2),
        custom_hooks=[EMAHook(momentum=momentum), Record()],
        default_hooks=dict(logger=None, checkpoint=None),
    )
    runner.train()
    # Updates after iterations 2 and 4 with mean gradients 1.5 and 3.5: p = -1.5, then -5.0.
    # MMEngine's averaged models copy the weights at their first update, then average.
    ema = -1.5
    ema = ema * (1 - momentum) + -5.0 * momentum
    ((val_p, after_val_p),) = recorded
    assert val_p == pytest.approx(ema)  # validation saw the average
    assert after_val_p == pytest.approx(-5.0) and runner.model.p.item() == pytest.approx(-5.0)
    assert runner.hooks.get(EMAHook).ema_model.module.p.item() == pytest.approx(ema)


def test_ema_bad_arguments():
    with pytest.raises(ValueError, match="momentum must be in"):
        EMAHook(momentum=1.5)
    with pytest.raises(ValueError, match="ema_type 'Nope' is unknown"):
        EMAHook(ema_type="Nope")
    with pytest.raises(ValueError, match="`begin_iter` and `begin_epoch` cannot both be set"):
        EMAHook(begin_iter=1, begin_epoch=1)


def test_early_stopping_stops_after_patience(tmp_path):
    scores = iter([50.0, 60.0, 60.05, 59.0, 58.0, 70.0, 80.0])

    class Fixed(BaseMetric):
        def process(self, data_batch, data_samples):
            self.results.append(0)

        def compute_metrics(self, results):
            return {"accuracy/top1": next(scores)}

    runner = Runner(
        model=ParamModel(),
        work_dir=tmp_path,
        train_dataloader=grads_loader([0.0]),
        val_dataloader=grads_loader([0.0]),
        val_evaluator=Fixed(),
        train_cfg=dict(by_epoch=True, max_epochs=7),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=1.0)),
        custom_hooks=[EarlyStoppingHook("accuracy/top1", patience=3)],
        default_hooks=dict(logger=None, checkpoint=None),
    )
    runner.train()
    # best 60 at epoch 2; 60.05 (< min_delta), 59, 58 do not improve -> stop after epoch 5
    assert runner.state.epoch == 5


def test_early_stopping_rules_and_threshold():
    assert infer_rule("accuracy/top1") == "greater"
    assert infer_rule("val/loss") == "less"
    with pytest.raises(ValueError, match="pass rule="):
        infer_rule("something")
    hook = EarlyStoppingHook("loss", stopping_threshold=0.5)

    class R:
        class state:
            epoch = iter = 0
            should_stop = False

    hook.after_val_epoch(R, {"loss": 0.4})
    assert R.state.should_stop


def test_ema_misspelt_argument_fails_at_construction():
    with pytest.raises(TypeError, match="ExponentialMovingAverage, which rejected them.*momentom"):
        EMAHook(momentom=0.1)

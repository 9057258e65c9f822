"""The training hot path reads no tensor back to the host between log intervals."""

import sys

import torch
from torch import nn

from engine import BaseModel, Hook, LoggerHook, Runner

SAMPLER_CODE = ("torch/utils/data/", "accelerate/data_loader.py")
HOST_READS = (
    "item",
    "tolist",
    "numpy",
    "__float__",
    "__int__",
    "__bool__",
    "__index__",
    "__format__",
    "__repr__",
)


class SeveralLosses(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x, y, mode):
        logits = self.net(x)
        if mode == "loss":
            return {
                "loss_cls": nn.functional.cross_entropy(logits, y),
                "loss_reg": [logits.pow(2).mean() * 1e-3, logits.abs().mean() * 1e-3],
                "acc": (logits.argmax(1) == y).float().mean(),
            }
        return logits


class Clock(Hook):
    """Records the iteration each host read falls in (runs first, reads nothing)."""

    priority = "HIGHEST"

    def __init__(self, log):
        self.log = log

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.log["iter"] = runner.state.iter + 1


def test_host_reads_only_at_log_intervals(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    data = list(zip(torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)))
    log = {"iter": 0, "reads": []}
    runner = Runner(
        model=SeveralLosses(),
        work_dir=tmp_path,
        train_dataloader=dict(dataset=data, batch_size=4, shuffle=True),
        train_cfg=dict(by_epoch=False, max_iters=100),
        optim_wrapper=dict(
            optimizer=dict(type="SGD", lr=0.01, momentum=0.9),
            clip_grad=dict(max_norm=1.0),
            accumulative_counts=2,
        ),
        param_scheduler=[dict(type="LinearLR", start_factor=0.1, by_epoch=False, end=20)],
        default_hooks=dict(logger=LoggerHook(interval=50, progress_bar=False)),
        custom_hooks=[Clock(log)],
    )
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            # Samplers draw shuffles with CPU index tensors: host memory on every device,
            # so reading them never waits for an accelerator.
            if not any(part in caller for part in SAMPLER_CODE):
                log["reads"].append((log["iter"], _name, caller))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    runner.train()
    monkeypatch.undo()
    iters_with_reads = sorted({it for it, *_ in log["reads"]})
    assert iters_with_reads == [50, 100], log["reads"]
    per_interval = [sum(1 for it, *_ in log["reads"] if it == k) for k in (50, 100)]
    assert max(per_interval) <= 5, log["reads"]

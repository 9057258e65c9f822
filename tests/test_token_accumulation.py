"""Token-weighted accumulation (``num_items``): an update equals one full batch of the window.

The two-process test launches tests/token_accumulation_script.py under ``accelerate
launch`` (as tests/test_distributed.py does); the others run in this process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from engine import BaseModel, OptimWrapper

SCRIPT = Path(__file__).parent / "token_accumulation_script.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process_on_each_windows_concatenated_batch(tmp_path):
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
           "2", "--main_process_port", str(_free_port()), str(SCRIPT), str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["processes"] == 2 and report["micro_batches"] == [5, 5]
    # the windows (3 + 2 micro-batches per process) really hold different token counts
    assert len(set(report["tokens_per_micro_batch"])) > 5
    assert report["moved"] > 1e-2  # the reference trained
    assert report["weighted_max_diff"] < 1e-6
    # without num_items the same run is off: the test can tell the two apart
    assert report["naive_max_diff"] > 1e-3


# -- one process, the wrapper directly --------------------------------------------------
def _micro_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g)) for n in (1, 7, 2, 9, 4)
    ]


def _full_batch_reference(clip: float | None) -> list[torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    batches = _micro_batches()
    for window in (batches[:3], batches[3:]):  # accumulative_counts=3, max 5: windows 3 + 2
        x = torch.cat([b[0] for b in window])
        y = torch.cat([b[1] for b in window])
        F.mse_loss(net(x), y).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        opt.zero_grad()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("with_accelerator", [False, True])
@pytest.mark.parametrize("clip", [None, 0.05])
def test_wrapper_update_equals_the_full_batch_with_clipping_and_a_partial_window(
    with_accelerator, clip
):
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    accelerator = None
    if with_accelerator:
        accelerator = Accelerator(cpu=True)
        net, opt = accelerator.prepare(net, opt)
    ow = OptimWrapper(
        opt,
        accelerator,
        accumulative_counts=3,
        clip_grad=None if clip is None else {"max_norm": clip},
    )
    ow.initialize_count_status(net, 0, 5)
    for x, y in _micro_batches():
        ow.update_params(F.mse_loss(net(x), y), num_items=torch.tensor(len(x)))
    for got, want in zip(net.parameters(), _full_batch_reference(clip)):
        torch.testing.assert_close(got.detach(), want, atol=1e-6, rtol=0)
    if clip is not None:  # the clip acted on the full-batch gradient (it binds here)
        assert ow.last_grad_norm is not None and float(ow.last_grad_norm) > clip


def test_a_window_mixing_weighted_and_unweighted_micro_batches_is_refused():
    net = nn.Linear(3, 1)
    ow = OptimWrapper(torch.optim.SGD(net.parameters(), lr=0.1), accumulative_counts=3)
    x, y = torch.randn(2, 3), torch.randn(2, 1)
    ow.update_params(F.mse_loss(net(x), y), num_items=2)
    with pytest.raises(ValueError, match="mixes micro-batches with and without 'num_items'"):
        ow.update_params(F.mse_loss(net(x), y))


class _Counted(BaseModel):
    def __init__(self, num_items) -> None:
        super().__init__()
        self.num_items = num_items
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x, mode="tensor"):
        return {"loss": (self.w * x).mean(), "num_items": self.num_items}


@pytest.mark.parametrize(
    ("num_items", "error", "match"),
    [
        ([3], TypeError, "'num_items' is a list; accepted: a number or a scalar tensor"),
        (torch.tensor([1, 2]), ValueError, "'num_items' must be a scalar, got shape \\(2,\\)"),
        (-1, ValueError, "'num_items' must be >= 0, got -1"),
    ],
)
def test_parse_losses_rejects_a_bad_num_items(num_items, error, match):
    model = _Counted(num_items)
    with pytest.raises(error, match=match):
        model.parse_losses(model(torch.ones(2), mode="loss"))


def test_parse_losses_logs_num_items_and_keeps_it_out_of_the_total():
    model = _Counted(torch.tensor(7))
    loss, log_vars = model.parse_losses(model(torch.full((2,), 3.0), mode="loss"))
    assert float(loss.detach()) == 3.0  # num_items is not a loss term
    assert list(log_vars) == ["loss", "num_items"] and int(log_vars["num_items"]) == 7


# -- no host read per micro-batch ----------------------------------------------------------
HOST_READS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


class _PaddedRegressor(BaseModel):
    def __init__(self, python_count: bool) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)
        self.python_count = python_count

    def forward(self, x, y, mode="tensor"):
        real = y[:, 1]  # 1 for real rows, 0 for padding
        err = (self.net(x).squeeze(1) - y[:, 0]).pow(2) * real
        n = real.sum()
        count = len(x) if self.python_count else n
        return {"loss": err.sum() / n.clamp(min=1), "num_items": count}


@pytest.mark.parametrize("python_count", [False, True])
def test_weighted_training_reads_the_host_only_at_log_intervals(
    tmp_path, monkeypatch, python_count
):
    from engine import Hook, LoggerHook, Runner

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 3, generator=g), torch.randn(48, 1, generator=g)
    y = torch.cat([y, (torch.rand(48, 1, generator=g) > 0.3).float()], 1)
    log = {"iter": 0, "reads": []}

    class Clock(Hook):
        priority = "HIGHEST"

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            log["iter"] = runner.state.iter + 1

    runner = Runner(
        _PaddedRegressor(python_count),
        tmp_path,
        train_dataloader=dict(dataset=list(zip(x, y)), batch_size=4),
        train_cfg=dict(by_epoch=False, max_iters=12),
        optim_wrapper=dict(
            optimizer=dict(type="SGD", lr=0.01), accumulative_counts=3, clip_grad=dict(max_norm=1.0)
        ),
        default_hooks=dict(logger=LoggerHook(interval=6, progress_bar=False), checkpoint=None),
        custom_hooks=[Clock()],
    )
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "torch/utils/data/" not in caller and "accelerate/data_loader.py" not in caller:
                log["reads"].append((log["iter"], _name, caller))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    runner.train()
    monkeypatch.undo()
    assert sorted({it for it, *_ in log["reads"]}) == [6, 12], log["reads"]

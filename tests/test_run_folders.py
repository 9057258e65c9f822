"""Runs that don't mix: each run's log, scalars, config and curves in work_dir/<timestamp>/.

The recipe runs twice into one work_dir, as `make train` twice would (the second resumes
with other settings); then each run folder must hold its own complete log.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from engine import Accuracy, BaseModel, Runner
from engine.runner.cpu_threads import set_cpu_threads
from engine.runner.run_folder import new_run_folder
from run_files import run_folders

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "recipes" / "train.py"
ENV = {
    "OMP_NUM_THREADS": "1",
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "PYTHONPATH": str(ROOT),
}


def recipe(*flags, check=True):
    proc = subprocess.run(
        [sys.executable, str(TRAIN), *flags], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert not check or proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_two_runs_into_one_work_dir_get_separate_complete_run_folders(tmp_path):
    wd = str(tmp_path)
    recipe("--max-epochs", "1", "--work-dir", wd)
    recipe("--max-epochs", "2", "--lr", "0.01", "--batch-size", "64", "--work-dir", wd, "--resume")
    first, second = run_folders(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name[0].isdigit()) == [
        "epoch_1",
        "epoch_2",
        "last_checkpoint",
    ]  # checkpoints stay in work_dir, where --resume found epoch_1
    for folder, epochs, batches in ((first, [1], 45), (second, [2], 23)):
        assert sorted(p.name for p in folder.iterdir()) == [
            "config.json",
            "curves.png",
            "run.log",
            "scalars.jsonl",
        ]
        log = folder.joinpath("run.log").read_text()
        assert f"run folder: {folder}" in log and log.count("run folder:") == 1
        assert f"({batches} batches per epoch per process)" in log
        records = [json.loads(x) for x in folder.joinpath("scalars.jsonl").read_text().splitlines()]
        assert sorted({r["epoch"] for r in records if r["mode"] == "train"}) == epochs
        assert log.count("Epoch(train)") == sum(r["mode"] == "train" for r in records)
    assert json.loads(first.joinpath("config.json").read_text())["optim"]["lr"] == 0.003
    assert json.loads(second.joinpath("config.json").read_text())["optim"]["lr"] == 0.01
    first_log, second_log = (
        first.joinpath("run.log").read_text(),
        second.joinpath("run.log").read_text(),
    )
    assert "start: from scratch" in first_log and "Resumed" not in first_log
    # epoch 1 of 45 batches, re-planned for batches of 64: epoch 2 starts at iteration 23
    assert f"start: resumed from {tmp_path / 'epoch_1'}, at iteration 23" in second_log
    changed = [
        line.split("setting: ", 1)[1]
        for line in second_log.splitlines()
        if "changed setting" in line
    ]
    assert changed == ["batch_size: 32 in the checkpoint's run, 64 now; this run's value is used"]
    assert "max_epochs was 1, this run's is 2; this run's wins" in second_log
    assert "0.01 in this run's config; the checkpoint's wins" in second_log  # the lr

    # --eval-only scores work_dir's latest checkpoint as the run that wrote it did
    (last_val,) = [
        json.loads(x)
        for x in second.joinpath("scalars.jsonl").read_text().splitlines()
        if json.loads(x)["mode"] == "val" and json.loads(x)["epoch"] == 2
    ]
    out = recipe("--eval-only", "--work-dir", wd).stdout
    assert f"validation accuracy: {last_val['accuracy/top1']:.2f}%" in out
    assert "final validation accuracy" not in out and len(run_folders(tmp_path)) == 3


def test_ctrl_c_exits_130_with_a_line_saying_how_to_resume(tmp_path):
    args = [sys.executable, str(TRAIN), "--max-epochs", "50", "--work-dir", str(tmp_path)]
    proc = subprocess.Popen(
        args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Epoch(train)" in line:
            proc.send_signal(signal.SIGINT)
            break
    out = "".join(lines) + proc.stdout.read()
    assert proc.wait(timeout=120) == 130, out[-3000:]
    assert "final validation accuracy" not in out
    (hint,) = [x for x in out.splitlines() if "continue with:" in x]
    assert hint.startswith("stopped by SIGINT at iteration ") and hint.endswith("--resume")
    it = int(hint.split("iteration ")[1].split(";")[0])
    assert (tmp_path / f"iter_{it}").is_dir()


def test_run_folders_do_not_collide(tmp_path):
    a, b = new_run_folder(tmp_path, create=True), new_run_folder(tmp_path, create=True)
    assert a != b and a.is_dir() and b.is_dir() and b.name.startswith(a.name[:15])


class Classifier(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
        )

    def forward(self, x, y, mode="tensor"):
        logits = self.net(x)
        if mode == "loss":
            return dict(loss=torch.nn.functional.cross_entropy(logits, y))
        return (logits, y) if mode == "predict" else logits


def test_summary_counts_parameters_data_and_updates(tmp_path):
    x = torch.randn(40, 4)
    data = list(zip(x, (x[:, 0] > 0).long()))
    model = Classifier()
    runner = Runner(
        model=model,
        work_dir=tmp_path,
        train_dataloader=DataLoader(data, batch_size=8),
        val_dataloader=DataLoader(data[:12], batch_size=8),
        val_evaluator=Accuracy(),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=2),
    )
    runner.train()
    log = run_folders(tmp_path)[-1].joinpath("run.log").read_text()
    n = sum(p.numel() for p in model.parameters())
    assert f"{n:,} parameters ({n:,} trainable)" in log
    assert "data: train 40 samples (5 batches per epoch per process), val 12 samples" in log
    # 5 batches x 3 epochs, windows of 2 across epochs: 7 full windows and a last one of 1
    assert "run: 3 epochs = 15 iterations = 8 optimizer updates" in log


def test_cpu_threads_share_the_cores_unless_the_user_chose(monkeypatch):
    import engine.runner.cpu_threads as ct

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(ct, "_TORCH_DEFAULT", 8)
        monkeypatch.setattr(ct, "available_cores", lambda: 8)
        torch.set_num_threads(8)
        assert set_cpu_threads(local_processes=4) == 2 and torch.get_num_threads() == 2
        torch.set_num_threads(3)  # the user's choice
        assert set_cpu_threads(local_processes=4) is None and torch.get_num_threads() == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "8")
        torch.set_num_threads(8)
        assert set_cpu_threads(local_processes=4) is None and torch.get_num_threads() == 8
    finally:
        torch.set_num_threads(before)


def test_curves_png_has_the_curves(tmp_path):
    from PIL import Image

    from engine.cli import main as cli
    from engine.plot import plot_curves

    folder = tmp_path / "20260101_000000"
    folder.mkdir()
    records = [
        dict(
            mode="train",
            epoch=1,
            iter=i,
            step=i,
            lr=0.1 * (1 - i / 50),
            loss=2.0 / i,
            grad_norm=1.0,
        )
        for i in range(5, 51, 5)
    ] + [
        dict(mode="val", epoch=e, iter=10 * e, step=10 * e, **{"accuracy/top1": 50 + 9 * e})
        for e in range(1, 6)
    ]
    folder.joinpath("scalars.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cli(["plot", str(tmp_path)])  # the work_dir: its newest run folder
    png = folder / "curves.png"
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(float)
    blue = np.all(np.abs(pixels - [31, 119, 180]) < 40, axis=2)  # matplotlib's first line colour
    rows = np.nonzero(blue.any(axis=1))[0]
    assert pixels.std() > 20 and blue.sum() > 300
    # every one of the 4 panels (losses, lr, grad norm, validation) has a blue curve
    panel_height = pixels.shape[0] / 4
    assert {int(r // panel_height) for r in rows} == {0, 1, 2, 3}
    assert plot_curves(folder, tmp_path / "x.png") == tmp_path / "x.png"

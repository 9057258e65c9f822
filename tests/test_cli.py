"""The command lines: a recipe's flags (--config, --print-config, the groups), `engine predict`,
and the errors a newcomer meets first (a missing tracker package)."""

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.checkpoint.io import save_tensors
from engine.checkpoint.model_source import describe_model
from engine.cli import main as cli
from engine.config import RunConfig
from engine.config_cli import parse_config
from engine.runner.trackers import check_trackers_installed, flat_hparams

ROOT = Path(__file__).resolve().parents[1]


def recipe_config():
    spec = importlib.util.spec_from_file_location("train_recipe", ROOT / "recipes" / "train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_recipe"] = module
    spec.loader.exec_module(module)
    return module


def test_config_file_gives_defaults_that_flags_override(tmp_path, capsys):
    recipe = recipe_config()
    saved = dataclasses.asdict(recipe.Config())
    saved["optim"]["lr"], saved["run"]["max_epochs"], saved["width"] = 0.5, 7, 8
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    cfg = parse_config(
        recipe.Config, ["--config", str(path), "--lr", "0.25", "--ema-momentum", "0.01"]
    )
    assert (cfg.optim.lr, cfg.run.max_epochs, cfg.width) == (0.25, 7, 8)  # flag, file, file
    assert cfg.run.extras.ema_momentum == 0.01
    with pytest.raises(SystemExit) as done:
        parse_config(recipe.Config, ["--config", str(path), "--print-config"])
    assert done.value.code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["optim"]["lr"] == 0.5 and printed == json.loads(json.dumps(saved))

    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text("optim:\n  lr: 0.125\nbatch_size: 16\n")
    cfg = parse_config(recipe.Config, ["--config", str(yaml_path)])
    assert (cfg.optim.lr, cfg.batch_size, cfg.optim.optimizer) == (0.125, 16, "AdamW")

    path.write_text(json.dumps({"run": {"epochs": 3}}))
    with pytest.raises(SystemExit, match=r"unknown key\(s\) run.epochs; accepted: work_dir"):
        parse_config(recipe.Config, ["--config", str(path)])


def test_run_config_reaches_the_runner_arguments():
    kw = RunConfig(
        max_iters=100, val_interval=20, load_from="w.safetensors", compile=True
    ).runner_kwargs()
    assert kw["train_cfg"] == dict(by_epoch=False, max_iters=100, val_interval=20)
    assert kw["load_from"] == "w.safetensors" and kw["compile"] is True
    assert kw["default_hooks"]["checkpoint"]["interval"] == -1  # by iterations: at the end
    run = RunConfig(monitor="accuracy/top1", smoke=2)
    run.checkpoint.save_best, run.checkpoint.max_keep_ckpts = True, 2
    run.extras.ema_momentum, run.extras.early_stopping_patience = 0.001, 3
    kw = run.runner_kwargs()
    assert kw["train_cfg"] == dict(by_epoch=True, max_epochs=1, val_interval=1)
    assert kw["default_hooks"]["checkpoint"] is None  # a smoke run leaves checkpoints alone
    assert kw["custom_hooks"] == [
        dict(type="EMAHook", momentum=0.001),
        dict(type="EarlyStoppingHook", monitor="accuracy/top1", patience=3),
    ]
    kw = RunConfig(monitor="acc").runner_kwargs()
    assert kw["default_hooks"]["checkpoint"]["save_best"] is None
    with pytest.raises(ValueError, match="early_stopping_patience needs --monitor"):
        RunConfig(extras=dataclasses.replace(RunConfig().extras, early_stopping_patience=2))


def test_a_missing_tracker_names_the_extra_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    with pytest.raises(ImportError, match=r"pip install 'engine-train\[tensorboard\]'"):
        check_trackers_installed("tensorboard")
    check_trackers_installed(None)
    assert flat_hparams({"optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "seed": None}) == {
        "optim.lr": 0.1,
        "optim.betas": "[0.9, 0.99]",
        "seed": "None",
    }


class Doubler(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.0))


def test_engine_predict_writes_the_predictions(tmp_path, capsys):
    from models import ParamModel  # predict returns [p]

    model = ParamModel()
    with torch.no_grad():
        model.p.fill_(3.0)
    weights = tmp_path / "w.safetensors"
    save_tensors(weights, model.state_dict(), metadata=describe_model(model))
    save_file({"x": torch.arange(5.0)}, tmp_path / "in.safetensors")
    cli(
        [
            "predict",
            str(weights),
            str(tmp_path / "in.safetensors"),
            str(tmp_path / "out.safetensors"),
            "--batch-size",
            "2",
        ]
    )
    out = load_file(tmp_path / "out.safetensors")
    assert torch.equal(out["output_0"], torch.tensor([3.0, 3.0, 3.0]))  # one p per batch of 2, 2, 1
    assert "wrote" in capsys.readouterr().out

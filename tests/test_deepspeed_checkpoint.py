"""Engine checkpoints of a DeepSpeed run: DeepSpeed's own files inside engine's folder.

DeepSpeed needs a GPU and is not installed here, so a stand-in engine (a module named
``DeepSpeedEngine`` with DeepSpeed's ``save_checkpoint``/``load_checkpoint`` signatures, writing
one file per kind under ``<dir>/<tag>/`` as DeepSpeed does) is what the Runner prepared. This
checks engine's side: the layout, the manifest, resume through the engine, and the one-line
refusals. DeepSpeed itself runs in bench/gpu_check.sh.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from engine import BaseModel, Runner
from engine.checkpoint import CheckpointError
from engine.checkpoint.manifest import verify
from engine.checkpoint.model_weights import load_state_into
from engine.checkpoint.sharded_state import load_shards, save_shards, shard_layout
from engine.model.base_model import attach_wrapper


class DeepSpeedEngine(nn.Module):
    """DeepSpeed's checkpoint calls, on a whole model and its optimizer."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.optimizer = None  # set once the Runner built it
        self.loads: list[dict] = []

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def train_step(self, data, optim_wrapper):
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data):
        return self.module.val_step(data)

    def test_step(self, data):
        return self.module.test_step(data)

    def save_checkpoint(self, save_dir, tag=None, client_state=None, save_latest=True):
        folder = Path(save_dir) / tag
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"module": self.module.state_dict()}, folder / "mp_rank_00_model_states.pt")
        torch.save(
            self.optimizer.state_dict(), folder / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
        )

    def load_checkpoint(self, load_dir, tag=None, **kwargs):
        self.loads.append(kwargs)
        folder = Path(load_dir) / tag
        self.module.load_state_dict(torch.load(folder / "mp_rank_00_model_states.pt")["module"])
        if kwargs["load_optimizer_states"]:
            self.optimizer.load_state_dict(
                torch.load(folder / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
            )
        return str(folder), {}


class Net(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(3, 8), nn.Linear(8, 1)

    def forward(self, inputs, targets=None, mode="tensor"):
        pred = self.fc2(torch.tanh(self.fc1(inputs)))
        return {"loss": F.mse_loss(pred, targets)} if mode == "loss" else pred


def _deepspeed(model, accelerator):
    engine = DeepSpeedEngine(model)
    attach_wrapper(model, engine)
    return engine


def _runner(work_dir: Path, resume=False, model_wrapper=_deepspeed) -> Runner:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 3, generator=g)
    data = [{"inputs": x[i], "targets": x[i, :1] - x[i, 1:2]} for i in range(24)]
    runner = Runner(
        model=Net(),
        work_dir=work_dir,
        train_dataloader=DataLoader(data, batch_size=4),
        train_cfg=dict(by_epoch=False, max_iters=6),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=0.01)),
        model_wrapper=model_wrapper,
        default_hooks=dict(
            logger=None, checkpoint=dict(type="CheckpointHook", interval=2, by_epoch=False)
        ),
        resume=resume,
    )
    if isinstance(runner.model, DeepSpeedEngine):
        runner.model.optimizer = runner.optim_wrapper.optimizer
    return runner


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ds")
    full = _runner(out / "work")
    full.train()
    resumed = _runner(out / "work", resume=str(out / "work" / "iter_4"))
    resumed.train()
    return {"out": out, "full": full, "resumed": resumed}


def test_the_checkpoint_holds_deepspeeds_files_listed_in_the_manifest(runs):
    folder = runs["out"] / "work" / "iter_4"
    assert not (folder / "model.safetensors").exists() and not (folder / "optimizer.pt").exists()
    listed = set(json.loads((folder / "manifest.json").read_text())["files"])
    assert {
        "deepspeed/state/mp_rank_00_model_states.pt",
        "deepspeed/state/zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "engine_state.json",
    } <= listed
    verify(folder)
    shard = folder / "deepspeed" / "state" / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte in one rank's file
    shard.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="zero_pp_rank_0"):
        verify(folder)


def test_resume_goes_through_the_engine_and_is_exact(runs):
    assert runs["resumed"].model.loads == [
        dict(load_module_strict=True, load_optimizer_states=True,
             load_lr_scheduler_states=False, load_module_only=False)
    ]  # fmt: skip
    full, resumed = runs["full"]._raw_model, runs["resumed"]._raw_model
    assert runs["resumed"].state.iter == 6
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_another_process_count_is_refused_with_the_alternatives(runs, tmp_path):
    folder = runs["out"] / "work" / "iter_2"
    state = json.loads((folder / "engine_state.json").read_text())
    state["meta"]["num_processes"] = 4
    (folder / "engine_state.json").write_text(json.dumps(state))
    runner = runs["full"]
    with pytest.raises(CheckpointError) as err:
        load_shards(folder, runner._raw_model, {"optim_wrapper": runner.optim_wrapper.optimizer})
    assert "\n" not in str(err.value) and "4 processes" in str(err.value)
    assert "ds_to_universal" in str(err.value) and "load_from" in str(err.value)


def test_a_run_without_deepspeed_cannot_resume_a_deepspeed_checkpoint(runs):
    model = Net()
    optimizer = torch.optim.AdamW(model.parameters())
    assert shard_layout(model) is None
    with pytest.raises(CheckpointError, match="same DeepSpeed launch, or export"):
        load_shards(runs["out"] / "work" / "iter_6", model, {"optimizer": optimizer})
    if importlib.util.find_spec("deepspeed") is not None:
        return  # with DeepSpeed installed its zero_to_fp32 reads real files, not these
    # Its weights alone need DeepSpeed's zero_to_fp32 (not installed here): how to get it.
    with pytest.raises(CheckpointError, match="pip install deepspeed"):
        load_shards(runs["out"] / "work" / "iter_6", model, {})


def test_whole_weights_and_dcp_shards_are_refused_under_deepspeed(runs, tmp_path):
    runner = runs["full"]
    whole = Net().state_dict()  # what load_from a .safetensors, or a DDP checkpoint, holds
    with pytest.raises(CheckpointError, match="load them into the model before building"):
        load_state_into(runner._raw_model, whole, tmp_path / "w.safetensors", strict=True)
    load_state_into(Net(), whole, tmp_path / "w.safetensors", strict=True)  # no DeepSpeed: fine
    folder = tmp_path / "ck"
    save_shards(folder, Net(), {})  # a DCP checkpoint of a whole model, one process
    with pytest.raises(CheckpointError, match="DCP shards .* export the weights"):
        load_shards(folder, runner._raw_model, {})


def test_unsharded_weights_in_place_of_fsdp1_shards_are_refused():
    from engine.checkpoint.sharded_state import _refuse_whole_state_of_fsdp1

    _refuse_whole_state_of_fsdp1(None)  # the model's own state: nothing put in its place
    with pytest.raises(CheckpointError, match="FSDP1 model.*use FSDP2"):
        _refuse_whole_state_of_fsdp1(Net().state_dict())  # an EMA's plain tensors


def test_an_emas_weights_are_refused_under_deepspeed(runs, tmp_path):
    averaged = Net().state_dict()  # what EMAHook puts in checkpoint["state_dict"]
    with pytest.raises(CheckpointError, match="DeepSpeed run.*model_wrapper='fsdp2' or DDP"):
        save_shards(tmp_path / "ck", runs["full"]._raw_model, {}, model_state=averaged)

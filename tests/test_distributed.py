"""Distributed training with real processes, the model wrappers, seeding, the GAN recipe.

Each launch costs seconds of process start-up, so one launch runs several scenarios of
tests/dist_train_script.py (module-scoped fixtures) and the tests read its report. The
launches also cover the ways to start processes on a machine without a GPU:
``accelerate launch --multi_gpu`` without ``ACCELERATE_USE_CPU`` (engine picks the CPU
backend itself), ``torch.distributed.run``, and the recipe under
``ACCELERATE_USE_CPU=true accelerate launch --multi_gpu``.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import pickle
import socket
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from engine import BaseModel
from engine.model.base_model import attach_wrapper, wrapper_of
from engine.model.wrappers import distributed_wrappers, unwrap, wrap_model
from engine.runner.runner import seed_worker
from run_files import run_file

TESTS = Path(__file__).parent
SCRIPT = TESTS / "dist_train_script.py"
RECIPE = TESTS.parent / "recipes" / "train_gan.py"


def _load(path: Path, name: str):
    if name not in sys.modules:  # tyro and dataclasses look their module up by name
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


scenarios = _load(SCRIPT, "dist_train_script")


def _free_port() -> int:
    # Other test sessions on this machine launch too: never rely on the default port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: list[str], *, use_cpu_flag: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for key in [k for k in env if k.startswith("ACCELERATE_")]:
        del env[key]  # a developer's accelerate settings must not change the test
    if use_cpu_flag:
        env["ACCELERATE_USE_CPU"] = "true"
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=300
    )


def _accelerate(nproc: int = 2) -> list[str]:
    return [
        "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", str(nproc), "--main_process_port", str(_free_port()),
    ]  # fmt: skip


def _passed(proc: subprocess.CompletedProcess, scenario: str) -> None:
    report = f"\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    assert f"PASS {scenario} processes=2" in proc.stdout, report


@pytest.fixture(scope="module")
def accelerate_run(tmp_path_factory):
    """``accelerate launch --multi_gpu --num_processes 2`` with no GPU visible and no
    ACCELERATE_USE_CPU: make_accelerator must choose the CPU (gloo) backend itself."""
    out = tmp_path_factory.mktemp("accelerate_launch")
    cmd = [*_accelerate(), str(SCRIPT), str(out), "ddp", "eval13", "custom", "random"]
    return _launch(cmd, use_cpu_flag=False), out


@pytest.fixture(scope="module")
def torchrun_run(tmp_path_factory):
    """``python -m torch.distributed.run --nproc_per_node 2``, no GPU visible."""
    out = tmp_path_factory.mktemp("torchrun")
    port = ["--master_port", str(_free_port())]
    cmd = ["-m", "torch.distributed.run", "--nproc_per_node", "2", *port, str(SCRIPT), str(out)]
    return _launch([*cmd, "gan", "fsdp_refused"], use_cpu_flag=False), out


# -- the launches ----------------------------------------------------------------
def test_cpu_backend_is_chosen_without_accelerate_use_cpu(accelerate_run, torchrun_run):
    for proc, _ in (accelerate_run, torchrun_run):
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        assert "BACKEND gloo" in proc.stdout


def test_two_processes_match_one_process_with_the_global_batch(accelerate_run, tmp_path):
    # The scenario also checked, with accumulative_counts=2, that each rank's gradients
    # differ before a window's last micro-batch (no_sync) and are equal after it.
    proc, out = accelerate_run
    _passed(proc, "ddp")
    scenarios.scenario_ddp(tmp_path)  # the reference: this process alone, batch 8
    for counts in (1, 2):
        two = torch.load(out / f"ddp_acc{counts}_np2.pt", weights_only=True)
        one = torch.load(tmp_path / f"ddp_acc{counts}_np1.pt", weights_only=True)
        assert two.keys() == one.keys()
        for key in one:
            torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=0, msg=key)


def test_runner_val_on_13_samples_sees_13_results_under_two_processes(accelerate_run):
    _passed(accelerate_run[0], "eval13")


def test_custom_wrapper_training_twice_per_batch_under_two_processes(accelerate_run):
    _passed(accelerate_run[0], "custom")


def test_diff_rank_seed_and_worker_seeds_under_two_processes(accelerate_run):
    _passed(accelerate_run[0], "random")


def test_separate_ddp_gan_under_two_processes(torchrun_run):
    _passed(torchrun_run[0], "gan")


def test_fsdp_wrapper_name_on_a_ddp_launch_is_refused(torchrun_run):
    _passed(torchrun_run[0], "fsdp_refused")


# -- the GAN recipe --------------------------------------------------------------
def _recipe_flags(work_dir: Path, epochs: int) -> list[str]:
    return [
        "--work-dir", str(work_dir), "--max-epochs", str(epochs), "--sample-interval", "1",
        "--width", "32", "--batch-size", "128", "--log-interval", "50",
    ]  # fmt: skip


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (292, 292)  # 8 x 8 digits of 8 px, 1 px gaps, scaled x4


def test_gan_recipe_trains_and_writes_sample_grids(tmp_path):
    import tyro

    recipe = _load(RECIPE, "train_gan")
    cfg = tyro.cli(
        recipe.Config, args=_recipe_flags(tmp_path, 2), config=(tyro.conf.OmitArgPrefixes,)
    )
    grids = recipe.main(cfg)
    assert [p.name for p in grids] == ["samples_epoch_1.png", "samples_epoch_2.png"]
    for path in grids:
        _check_png(path)
    assert "loss_gen" in run_file(tmp_path, "scalars.jsonl").read_text()


def test_gan_recipe_under_accelerate_launch_with_use_cpu(tmp_path):
    args = [*_accelerate(), str(RECIPE), *_recipe_flags(tmp_path, 1)]
    proc = _launch(args, use_cpu_flag=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    _check_png(run_file(tmp_path, "samples_epoch_1.png"))  # in the run folder


def test_png_writer_round_trips_through_zlib():
    recipe = _load(RECIPE, "train_gan")
    pixels = torch.arange(12, dtype=torch.uint8).view(3, 4) * 20
    data = recipe.png_bytes(pixels)
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4 : idat], "big")

    rows = zlib.decompress(data[idat + 4 : idat + 4 + length])
    assert rows == b"".join(b"\x00" + bytes(r) for r in pixels.tolist())


# -- wrappers in one process -----------------------------------------------------
class Toy(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        self.discriminator = nn.Linear(3, 1)

    def forward(self, inputs, mode="tensor"):
        return self.discriminator(self.generator(inputs))


@pytest.fixture
def one_rank_group():
    """A one-process gloo group: real DDP modules, no launch."""
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


def test_separately_wrapped_children_keep_plain_state_dict_keys(one_rank_group):
    from engine.model.wrappers import _keep_plain_keys, _no_reduction_while_frozen

    model = Toy()
    keys = list(model.state_dict())
    for name in ("generator", "discriminator"):  # what wrap_separately does under a launcher
        ddp = DistributedDataParallel(getattr(model, name))
        _keep_plain_keys(ddp)
        _no_reduction_while_frozen(ddp)
        setattr(model, name, ddp)
    assert list(model.state_dict()) == keys
    assert model.state_dict()._metadata["generator.1"]["version"] == 2  # BatchNorm's
    shifted = {k: v + 1 if v.is_floating_point() else v for k, v in Toy().state_dict().items()}
    model.load_state_dict(shifted)  # strict, plain keys
    torch.testing.assert_close(model.generator.module[0].weight, shifted["generator.0.weight"])
    fresh = Toy()
    fresh.load_state_dict(model.state_dict())  # and a plain model takes the wrapped one's
    assert unwrap(model.generator) is model.generator.module
    assert [type(w) for w in distributed_wrappers(model)] == [DistributedDataParallel] * 2

    # A frozen module's forward does not arm DDP's reducer, and the flag comes back.
    model.discriminator.requires_grad_(False)
    model(torch.randn(4, 2)).sum().backward()
    assert model.discriminator.require_backward_grad_sync
    model.discriminator.requires_grad_(True)


def test_whole_model_wrapper_is_not_inherited_by_copies(one_rank_group):
    model = Toy()
    ddp = DistributedDataParallel(model)
    attach_wrapper(model, ddp)
    assert wrapper_of(model) is ddp and distributed_wrappers(model) == [ddp]
    twin = copy.deepcopy(model)  # an EMA copy must run its own weights, not the original's
    assert wrapper_of(twin) is None and distributed_wrappers(twin) == []
    assert wrapper_of(pickle.loads(pickle.dumps(model))) is None  # and it pickles
    calls = []
    ddp.register_forward_pre_hook(lambda *_: calls.append(1))
    model(torch.randn(4, 2))  # with gradients: through DDP, so backward reduces them
    with torch.no_grad():
        model(torch.randn(4, 2))  # without: local, a lone rank cannot hang in DDP's forward
    twin(torch.randn(4, 2))
    assert calls == [1]


def test_wrap_model_rejects_bad_input_with_a_clear_error():
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    with pytest.raises(ValueError, match="accepted: None, 'separate'"):
        wrap_model(Toy(), accelerator, "MMSeparate")
    with pytest.raises(ValueError, match="needs a 'type'"):
        wrap_model(Toy(), accelerator, dict(find_unused_parameters=True))
    with pytest.raises(ValueError, match=r"\['detect_anomalous_params'\] are unknown"):
        wrap_model(Toy(), accelerator, dict(type="separate", detect_anomalous_params=True))
    with pytest.raises(TypeError, match="lacks val_step, test_step"):
        wrap_model(Toy(), accelerator, lambda model, acc: type("W", (), {"train_step": print})())
    # DDP options are taken (MMEngine configs carry them) and do not outlive the call.
    model = wrap_model(Toy(), accelerator, dict(type="separate", find_unused_parameters=True))
    assert isinstance(model, Toy) and accelerator.ddp_handler is None


def test_worker_seeds_differ_across_workers_and_ranks_and_repeat():
    def draws(rank: int) -> torch.Tensor:
        torch.manual_seed(0)  # the loader's base seed comes from the (seeded) main RNG
        loader = DataLoader(
            scenarios.RandomItems(),
            batch_size=2,
            num_workers=2,
            worker_init_fn=functools.partial(seed_worker, rank=rank),
        )
        return torch.cat(list(loader))

    rank0, rank1 = draws(0), draws(1)
    assert torch.equal(rank0, draws(0))  # reproducible
    assert not torch.isclose(rank0, rank1).any()  # ranks differ
    assert not torch.isclose(rank0[0:2], rank0[2:4]).any()  # the two workers differ


def test_deepspeed_and_fsdp_prepare_the_model_with_its_optimizers():
    """Accelerate builds DeepSpeed/FSDP from the model and its optimizers in one prepare
    call; this machine cannot run either, so the decision itself is checked."""
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from engine.runner.accelerate_setup import needs_joint_prepare

    for kind, joint in [
        (DistributedType.DEEPSPEED, True),
        (DistributedType.FSDP, True),
        (DistributedType.MULTI_GPU, False),
        (DistributedType.NO, False),
    ]:
        acc = SimpleNamespace(distributed_type=kind)
        assert needs_joint_prepare(acc, None) is joint
        assert needs_joint_prepare(acc, "separate") is False


def test_seed_custom_wrapper_subclass_ports_with_its_imports_changed(tmp_path):
    """The seed's CustomDistributedDataParallel, subclassing MMSeparateDistributedDataParallel;
    the seed elides the update, which is added as the last two lines of train_step."""
    import torch
    from torch import nn

    from engine import BaseModel, Runner
    from engine.model.wrappers import MMSeparateDistributedDataParallel

    seen = []

    class Flip(nn.Module):  # batch augmentation: negate the inputs when training
        def forward(self, data, training=False):
            seen.append(training)
            return {"x": -data["x"] if training else data["x"], "y": data["y"]}

    class CustomModel(BaseModel):
        def __init__(self):
            super().__init__(data_preprocessor=Flip())
            self.net = nn.Linear(2, 1)

        def forward(self, data, mode="tensor"):
            out = self.net(data["x"])
            if mode == "loss":
                return {"loss": (out - data["y"]).pow(2).mean()}
            return out

    class CustomDistributedDataParallel(MMSeparateDistributedDataParallel):
        def train_step(self, data, optim_wrapper):
            data = self.data_preprocessor(data, training=True)  # Enable batch augmentation
            loss = self(data, mode="loss")
            data = self.data_preprocessor(data, training=False)  # Disable batch augmentation
            loss = self(data, mode="loss")
            loss, log_vars = self.module.parse_losses(loss)
            optim_wrapper.update_params(loss)
            return log_vars

    batch = {"x": torch.ones(4, 2), "y": torch.zeros(4, 1)}
    model = CustomModel()
    runner = Runner(
        model=model,
        work_dir=tmp_path,
        train_dataloader=[batch] * 3,
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        model_wrapper=CustomDistributedDataParallel,
        default_hooks=dict(checkpoint=None),
    )
    assert isinstance(runner.model, CustomDistributedDataParallel)
    before = model.net.weight.detach().clone()
    runner.train()
    assert seen == [True, False] * 3
    assert not torch.equal(model.net.weight, before)


def test_gan_recipe_resumes_exactly_with_disc_steps_and_accumulation(tmp_path):
    """The generator updates every disc_steps-th iteration, so its accumulation window is
    not the iteration count: a run stopped by SIGTERM (checkpoint at the next window end)
    and resumed must still match the uninterrupted one."""
    import signal

    import tyro

    from engine import Hook

    recipe = _load(RECIPE, "train_gan")
    extra = ["--disc-steps", "2", "--accumulative-counts", "3"]

    class Interrupt(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.state.iter == 7:  # SignalHook stops at the next point where no window is open
                signal.raise_signal(signal.SIGTERM)

    def run(work_dir, resume=False, interrupt=False):
        args = _recipe_flags(work_dir, 3) + extra + (["--resume"] if resume else [])
        args[args.index("--batch-size") + 1] = "256"  # 7 iterations per epoch
        cfg = tyro.cli(recipe.Config, args=args, config=(tyro.conf.OmitArgPrefixes,))
        runner = recipe.build_runner(cfg)
        if interrupt:
            runner.hooks.add(Interrupt())
        runner.train()
        return runner

    full = run(tmp_path / "full")._raw_model.state_dict()
    stopped = run(tmp_path / "part", interrupt=True)
    # Not 9: the discriminator's window ends there, the generator's (4 of its 3-batch
    # windows' micro-batches done) does not; both end at 12.
    assert stopped.state.iter == 12
    resumed = run(tmp_path / "part", resume=True)
    assert resumed.state.iter == 21
    for (name, a), b in zip(full.items(), resumed._raw_model.state_dict().values()):
        assert torch.equal(a, b), name

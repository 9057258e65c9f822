"""Each member of an OptimWrapperDict keeps its own accumulation window: a member that does
not step every iteration applies its last partial window, and resume places every window.

The GAN recipe is checked against plain PyTorch: the same real batches and noise (recorded
from the run), Adam on copies of the initial weights, windows written out by hand.
"""

import copy
import importlib.util
import signal
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine import Hook, OptimWrapper, OptimWrapperDict

RECIPE = Path(__file__).parent.parent / "recipes" / "train_gan.py"


def _recipe():
    if "train_gan" not in sys.modules:  # tyro and dataclasses look their module up by name
        spec = importlib.util.spec_from_file_location("train_gan", RECIPE)
        sys.modules["train_gan"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["train_gan"])
    return sys.modules["train_gan"]


def test_a_member_used_every_other_iteration_applies_its_last_partial_window():
    # Member "b" back-propagates on iterations 2, 4, 6, 8, 10: windows of 3 -> (2,4,6), (8,10).
    pa, pb = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    ow = OptimWrapperDict(
        a=OptimWrapper(torch.optim.SGD([pa], lr=1.0), accumulative_counts=3),
        b=OptimWrapper(torch.optim.SGD([pb], lr=1.0), accumulative_counts=3),
    )
    for w in ow.values():
        w.initialize_count_status(None, 0, 10)
    for it in range(1, 11):
        ow["a"].update_params((pa * it).sum())
        if it % 2 == 0:
            ow["b"].update_params((pb * it).sum())
    assert pb.item() == pytest.approx(-(2 + 4 + 6) / 3)  # one full window; the last is open
    assert [ow["a"].apply_partial_window(), ow["b"].apply_partial_window()] == [False, True]
    # The open window held 8 and 10, scaled for 3 micro-batches: applied as their mean.
    assert pb.item() == pytest.approx(-(2 + 4 + 6) / 3 - (8 + 10) / 2)
    assert pb.grad is None
    assert pa.item() == pytest.approx(-(6 + 15 + 24) / 3 - 10)


class Recorder:
    """Records what the GAN's steps see: real batches and the noise each draw returns."""

    def __init__(self, model):
        self.reals, self.noises, self.gen_iters = [], [], []
        model_noise, train_gen = model.noise, model.train_generator

        def noise(n, like):
            z = model_noise(n, like)
            self.noises.append(z.detach().clone())
            return z

        def train_discriminator(inputs, optim_wrapper, _orig=model.train_discriminator):
            self.reals.append(inputs["inputs"].detach().clone())
            return _orig(inputs, optim_wrapper)

        def train_generator(inputs, optim_wrapper):
            self.gen_iters.append(len(self.reals))
            return train_gen(inputs, optim_wrapper)

        model.noise, model.train_generator = noise, train_generator
        model.train_discriminator = train_discriminator


def _reference(initial, rec, acc, lr, total_iters):
    """Plain PyTorch: the discriminator every iteration, the generator on `rec.gen_iters`,
    each with windows of `acc` micro-batches, a partial last window applied at the end."""
    gen, disc = copy.deepcopy(initial.generator), copy.deepcopy(initial.discriminator)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    sizes_d = _window_sizes(total_iters, acc)
    sizes_g = _window_sizes(len(rec.gen_iters), acc)
    noises, n_gen = iter(rec.noises), 0
    for it, real in enumerate(rec.reals, start=1):
        with torch.no_grad():
            fake = gen(next(noises))
        pf, pr = disc(fake), disc(real)
        loss = F.binary_cross_entropy_with_logits(pf, torch.zeros_like(pf))
        loss = loss + F.binary_cross_entropy_with_logits(pr, torch.ones_like(pr))
        (loss / sizes_d[it - 1]).backward()
        if it % acc == 0 or it == total_iters:
            opt_d.step(), opt_d.zero_grad()
        if it in rec.gen_iters:
            disc.requires_grad_(False)
            pf = disc(gen(next(noises)))
            g_loss = F.binary_cross_entropy_with_logits(pf, torch.ones_like(pf))
            (g_loss / sizes_g[n_gen]).backward()
            disc.requires_grad_(True)
            n_gen += 1
            if n_gen % acc == 0:
                opt_g.step(), opt_g.zero_grad()
    if n_gen % acc:  # the generator's last, partial window, at the end of the run
        opt_g.step(), opt_g.zero_grad()
    return gen, disc


def _window_sizes(n, acc):
    """Size of the window each of n micro-batches belongs to."""
    return [min(acc, n - (i // acc) * acc) for i in range(n)]


def _run(recipe, work_dir, resume=False, interrupt_at=None, record=True):
    import tyro

    args = [
        "--work-dir", str(work_dir), "--max-epochs", "3", "--sample-interval", "100",
        "--width", "16", "--batch-size", "256", "--log-interval", "50",
        "--disc-steps", "2", "--accumulative-counts", "3",
    ] + (["--resume"] if resume else [])  # fmt: skip
    cfg = tyro.cli(recipe.Config, args=args, config=(tyro.conf.OmitArgPrefixes,))
    runner = recipe.build_runner(cfg)
    initial = copy.deepcopy(runner._raw_model)
    rec = Recorder(runner._raw_model) if record else None
    if interrupt_at is not None:

        class Interrupt(Hook):
            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                if runner.iter == interrupt_at:  # stops at the next point with no open window
                    signal.raise_signal(signal.SIGTERM)

        runner.hooks.add(Interrupt())
    runner.train()
    return runner, initial, rec


def _assert_close(module, reference):
    for (name, a), b in zip(module.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_gan_recipe_with_disc_steps_and_accumulation_matches_plain_pytorch(tmp_path):
    recipe = _recipe()
    runner, initial, rec = _run(recipe, tmp_path / "full")
    # 1,797 digits, batches of 256 with drop_last: 7 iterations a pass, 21 in all; the
    # generator trains on 10 of them: windows of 3, 3, 3 and a last one of 1.
    assert len(rec.reals) == 21 and len(rec.gen_iters) == 10
    assert runner.state.windows == {"generator": 10, "discriminator": 21}
    gen, disc = _reference(initial, rec, acc=3, lr=2e-4, total_iters=21)
    model = runner._raw_model
    _assert_close(model.generator, gen)
    _assert_close(model.discriminator, disc)
    assert all(p.grad is None for p in model.generator.parameters())  # no stale window


def test_gan_recipe_stopped_and_resumed_matches_plain_pytorch(tmp_path):
    recipe = _recipe()
    full, initial, rec = _run(recipe, tmp_path / "full")
    stopped, _, _ = _run(recipe, tmp_path / "part", interrupt_at=7, record=False)
    # Not 9: the discriminator's window ends there, the generator's (4 of its micro-
    # batches) does not; both windows are closed at 12.
    assert stopped.state.iter == 12
    assert stopped.state.windows == {"generator": 6, "discriminator": 12}
    resumed, _, _ = _run(recipe, tmp_path / "part", resume=True, record=False)
    assert resumed.state.iter == 21 and resumed.state.windows == full.state.windows
    gen, disc = _reference(initial, rec, acc=3, lr=2e-4, total_iters=21)
    _assert_close(resumed._raw_model.generator, gen)
    _assert_close(resumed._raw_model.discriminator, disc)


def test_last_partial_window_is_reduced_across_two_processes(tmp_path):
    import os
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for key in [k for k in env if k.startswith("ACCELERATE_")]:
        del env[key]
    script = Path(__file__).parent / "dist_member_window_script.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", port, str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    report = f"\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    assert "PASS member windows processes=2" in proc.stdout, report
    assert (tmp_path / "gan_np2.pt").exists()

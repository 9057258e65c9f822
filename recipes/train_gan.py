"""Train a small GAN on the 8x8 handwritten digits bundled in recipes/data.

One process:         python recipes/train_gan.py --max-epochs 60
Several processes:   accelerate launch --multi_gpu --num_processes 2 recipes/train_gan.py
CPU-only machines:   ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 recipes/train_gan.py
All flags:           python recipes/train_gan.py --help

MMEngine's GAN pattern: the model's own train_step updates the discriminator and the
generator in turn through an OptimWrapperDict, and model_wrapper='separate' gives each of
them its own DDP. A grid of generated digits is written to the run folder (work_dir/<timestamp>/) every few epochs.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from accelerate import PartialState
from accelerate.utils import set_seed
from torch import nn

from engine import BaseModel, Hook, ImgDataPreprocessor, Runner
from engine.checkpoint.disk_errors import write_file
from engine.config import RunConfig
from engine.config_cli import parse_config
from engine.model.wrappers import unwrap

DATA = Path(__file__).parent / "data" / "digits.parquet"  # next to the recipe, whatever the cwd


@dataclass
class Config:
    """A GAN on the digits: every setting of the run, each a flag."""

    run: RunConfig = field(
        default_factory=lambda: RunConfig(work_dir="work_dirs/gan_digits", max_epochs=60)
    )
    batch_size: int = 64
    """Real images per batch on each process."""
    noise_size: int = 32
    """Length of the noise vector the generator turns into an image."""
    width: int = 256
    """Hidden units of the generator's and the discriminator's two hidden layers."""
    lr: float = 2e-4
    """Adam learning rate of both networks."""
    disc_steps: int = 1
    """Discriminator updates per generator update: the generator trains every disc_steps-th iteration."""
    accumulative_counts: int = 1
    """Micro-batches per update of each network (the generator counts only its own steps)."""
    sample_interval: int = 10
    """Write samples_epoch_<n>.png to the run folder every this many epochs, and after the last."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "noise_size", "width", "disc_steps", "sample_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def build_dataset() -> datasets.Dataset:
    """The 1,797 digits as {'inputs': a 1x8x8 int tensor with values 0..16}; labels unused."""
    ds = datasets.load_dataset("parquet", data_files=str(DATA), split="train")
    ds = ds.map(
        lambda batch: {"inputs": [torch.tensor(img).view(1, 8, 8) for img in batch["image"]]},
        batched=True,
        remove_columns=["image", "label"],
    )
    return ds.with_format("torch")


class DigitsGAN(BaseModel):
    """Two MLPs: `generator` maps noise to an 8x8 image in [-1, 1], `discriminator` scores one."""

    def __init__(self, noise_size: int = 32, width: int = 256, disc_steps: int = 1) -> None:
        # 0..16 -> -1..1 on the device, the range of the generator's tanh.
        super().__init__(data_preprocessor=ImgDataPreprocessor(mean=[8.0], std=[8.0]))
        self.noise_size, self.disc_steps = noise_size, disc_steps
        self.generator = nn.Sequential(
            nn.Linear(noise_size, width), nn.LeakyReLU(0.2),
            nn.Linear(width, width), nn.LeakyReLU(0.2),
            nn.Linear(width, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)),
        )  # fmt: skip
        self.discriminator = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, width), nn.LeakyReLU(0.2),
            nn.Linear(width, width), nn.LeakyReLU(0.2),
            nn.Linear(width, 1),
        )  # fmt: skip

    def forward(self, inputs, data_samples=None, mode="tensor"):
        """'tensor'/'predict': images generated from the noise vectors in `inputs`."""
        if mode == "loss":
            raise ValueError("DigitsGAN computes its losses in train_step, not forward")
        return self.generator(inputs)

    def train_step(self, data, optim_wrapper):
        data = self.data_preprocessor(data, True)
        disc_wrapper, gen_wrapper = optim_wrapper["discriminator"], optim_wrapper["generator"]
        # The discriminator's wrapper counts every iteration and resumes at the right one,
        # so it is the clock for disc_steps (train_step never reads the runner).
        train_generator = (disc_wrapper.inner_count + 1) % self.disc_steps == 0
        # Each optim_context gets the module its wrapper updates: inside an accumulation
        # window it skips that module's gradient all-reduce (no_sync).
        with disc_wrapper.optim_context(self.discriminator):
            log_vars = self.train_discriminator(data, disc_wrapper)
        if train_generator:
            # No gradients for the discriminator while the generator learns through it.
            self.discriminator.requires_grad_(False)
            with gen_wrapper.optim_context(self.generator):
                log_vars.update(self.train_generator(data, gen_wrapper))
            self.discriminator.requires_grad_(True)
        return log_vars

    def noise(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.noise_size, device=like.device, dtype=like.dtype)

    def train_discriminator(self, inputs, optim_wrapper):
        real = inputs["inputs"]
        with torch.no_grad():
            fake = self.generator(self.noise(real.shape[0], real))
        pred_fake, pred_real = self.discriminator(fake), self.discriminator(real)
        losses = dict(
            loss_disc_fake=F.binary_cross_entropy_with_logits(
                pred_fake, torch.zeros_like(pred_fake)
            ),
            loss_disc_real=F.binary_cross_entropy_with_logits(
                pred_real, torch.ones_like(pred_real)
            ),
        )
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        log_vars["loss_disc"] = log_vars.pop("loss")
        return log_vars

    def train_generator(self, inputs, optim_wrapper):
        real = inputs["inputs"]
        pred_fake = self.discriminator(self.generator(self.noise(real.shape[0], real)))
        # Non-saturating loss: the generator wants its images scored as real.
        loss = F.binary_cross_entropy_with_logits(pred_fake, torch.ones_like(pred_fake))
        optim_wrapper.update_params(loss)
        return {"loss_gen": loss.detach()}


def png_bytes(pixels: torch.Tensor) -> bytes:
    """An 8-bit grayscale PNG of a HxW uint8 tensor (zlib + struct: no imaging package)."""
    height, width = pixels.shape
    rows = b"".join(b"\x00" + bytes(row) for row in pixels.tolist())  # filter 0 per row

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8 bits, grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def image_grid(images: torch.Tensor, per_row: int = 8, scale: int = 4) -> torch.Tensor:
    """N x 1 x H x W images in [-1, 1] -> one uint8 grid, 1-pixel gaps, each pixel scale x scale."""
    n, _, h, w = images.shape
    rows = -(-n // per_row)
    grid = torch.zeros(rows * (h + 1) + 1, per_row * (w + 1) + 1)
    for i, img in enumerate(images[:, 0].float().clamp(-1, 1).add(1).mul(127.5)):
        r, c = divmod(i, per_row)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = img
    grid = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    return grid.round().to(torch.uint8)


class SampleGrid(Hook):
    """Writes samples_epoch_<n>.png to the run folder every `interval` epochs and after the last.

    The noise is fixed for the whole run, so consecutive grids show the same digits improve.
    """

    def __init__(self, interval: int, noise_size: int, num: int = 64) -> None:
        self.interval = interval
        self.noise = torch.randn(num, noise_size, generator=torch.Generator().manual_seed(0))
        self.written: list[Path] = []

    def after_train_epoch(self, runner) -> None:
        epoch = runner.epoch + 1  # the loop advances the count after this event
        if not (epoch % self.interval == 0 or epoch == runner.max_epochs):
            return
        if not runner.accelerator.is_main_process or runner.log_dir is None:
            return
        # The plain module, not its DDP wrapper: one process generating alone must not
        # enter a collective (DDP's forward may sync buffers).
        generator = unwrap(runner.model.generator)
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            images = generator(self.noise.to(runner.accelerator.device))
        generator.train(was_training)
        path = Path(runner.log_dir) / f"samples_epoch_{epoch}.png"
        try:  # a full disk costs the picture, not the run
            write_file(path, png_bytes(image_grid(images.cpu())), "writing a sample grid")
        except OSError as err:  # (images.cpu() above: a host sync, once per grid)
            runner.logger.warning("%s; training goes on", err)
            return
        self.written.append(path)


def build_runner(cfg: Config) -> Runner:
    if cfg.run.seed is not None:
        set_seed(cfg.run.seed)  # the initial weights are drawn before the Runner seeds
    optimizer = dict(type="Adam", lr=cfg.lr, betas=(0.5, 0.999))
    member = dict(optimizer=optimizer, accumulative_counts=cfg.accumulative_counts)
    kwargs = cfg.run.runner_kwargs()
    # Every process draws its own noise, so the processes' fakes differ like their reals.
    kwargs["randomness"]["diff_rank_seed"] = True
    return Runner(
        model=DigitsGAN(cfg.noise_size, cfg.width, cfg.disc_steps),
        train_dataloader=dict(
            dataset=build_dataset(), batch_size=cfg.batch_size, shuffle=True, drop_last=True
        ),
        # Keyed by sub-module: one Adam, one OptimWrapper per network (an OptimWrapperDict).
        optim_wrapper=dict(generator=member, discriminator=dict(member)),
        model_wrapper="separate",  # generator and discriminator each get their own DDP
        # Each member keeps its own accumulation window (the generator counts only the
        # iterations it trains on), and one left open at the end is applied then.
        # The run config's hooks (--ema-momentum, --early-stopping-patience) come first.
        custom_hooks=kwargs.pop("custom_hooks") + [SampleGrid(cfg.sample_interval, cfg.noise_size)],
        cfg=cfg,  # written to the run folder's config.json
        **kwargs,  # work_dir, train_cfg, seed, precision, logging, resume
    )


def main(cfg: Config) -> list[Path]:
    """Train; returns the sample grids written (on the main process; [] elsewhere)."""
    runner = build_runner(cfg)
    runner.train()
    grids = runner.hooks.get(SampleGrid).written
    if grids:
        print(f"samples: {grids[-1]}")
    return grids


if __name__ == "__main__":
    # Flags are flat (--lr, not --run.lr), grouped in --help; --config FILE takes the
    # defaults from a saved config.json. Under accelerate launch only rank 0 prints.
    main(parse_config(Config))
    # Meet, then close the process group: gloo can otherwise abort a process at exit.
    PartialState().wait_for_everyone()
    PartialState().destroy_process_group()

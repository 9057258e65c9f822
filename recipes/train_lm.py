"""Train a small GPT-style byte-level language model on the standard library's docstrings.

One process:         python recipes/train_lm.py
A GPU, bf16, faster: python recipes/train_lm.py --model gpt2-small --seq-len 512 --mixed-precision bf16 --compile
Several processes:   accelerate launch --multi_gpu --num_processes 2 recipes/train_lm.py
All flags:           python recipes/train_lm.py --help

The corpus is built offline from the Python install itself (recipes/lm_corpus.py), split
train/val by module. On 2 CPU cores the defaults' loss falls from ln(256) = 5.5 to ~3.6
within 40 iterations (a minute or two); validation perplexity is reported every
--val-interval iterations, and a text sample is printed at the end.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
import tyro
from accelerate import PartialState
from accelerate.utils import set_seed
from lm_corpus import chunk, stdlib_documents
from torch import nn

from engine import BaseMetric, BaseModel, Runner
from engine.config import OptimConfig
from engine.hooks.throughput_hook import ThroughputHook
from engine.model.wrappers import unwrap


@dataclass(frozen=True)
class ModelConfig:
    layers: int
    width: int
    heads: int


# Presets are plain Python: pick one with --model, or add your own here.
PRESETS = {
    "tiny": ModelConfig(layers=2, width=32, heads=2),  # tests: seconds
    "small": ModelConfig(layers=4, width=128, heads=4),  # CPU default: minutes
    "medium": ModelConfig(layers=6, width=384, heads=6),
    "gpt2-small": ModelConfig(layers=12, width=768, heads=12),  # GPU
}


@dataclass
class Config:
    """Byte-level language model: every setting of the run, each a flag."""

    work_dir: str = "work_dirs/lm"
    """Directory for checkpoints; each run writes run.log and scalars.jsonl into its own work_dir/<timestamp>/."""
    model: Literal["tiny", "small", "medium", "gpt2-small"] = "small"
    """Model size preset (layers, width, heads in PRESETS)."""
    seq_len: int = 128
    """Bytes of context per sample (and the model's maximum)."""
    batch_size: int = 16
    """Sequences per batch on each process."""
    max_iters: int = 300
    """Training iterations (micro-batches)."""
    val_interval: int = 100
    """Validate every this many iterations (and at the end)."""
    log_interval: int = 20
    """Log loss, lr and tokens/s every this many iterations."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            "AdamW", lr=3e-3, weight_decay=0.1, clip_grad_norm=1.0, lr_schedule="cosine"
        )
    )
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """Autocast precision ('bf16' on recent GPUs; fp16 adds a loss scaler)."""
    compile: bool = False
    """torch.compile the model (pays off on a GPU; minutes of compilation on a CPU)."""
    corpus_bytes: int = 1_000_000
    """Docstring bytes to collect from the standard library (all of it: ~1.6 MB)."""
    val_fraction: float = 0.1
    """Share of the documents (modules) held out for validation."""
    seed: int = 0
    """Seed of the corpus order, the split, the weights and the data order."""
    prompt: str = "Return the "
    """Start of the text sample printed at the end."""
    sample_bytes: int = 300
    """Bytes to generate for the sample (0: none)."""
    cpu_threads: int | None = None
    """Threads per process for CPU ops; None: torch's default."""

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch_size", "max_iters", "val_interval", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.corpus_bytes < 1000:
            raise ValueError(f"corpus_bytes must be >= 1000, got {self.corpus_bytes}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1 or None, got {self.cpu_threads}")


def build_datasets(cfg: Config) -> tuple[list[dict], list[dict]]:
    """Train/val samples, split by document: no module's text is in both."""
    texts = [text for _, text in stdlib_documents(cfg.corpus_bytes, cfg.seed)]
    n_val = max(1, round(cfg.val_fraction * len(texts)))
    return chunk(texts[n_val:], cfg.seq_len), chunk(texts[:n_val], cfg.seq_len)


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, c // self.heads).unbind(2)
        # (b, heads, t, head_dim); SDPA picks the flash/memory-efficient kernel it can
        att = F.scaled_dot_product_attention(
            *(z.transpose(1, 2) for z in (q, k, v)), is_causal=True
        )
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.norm2(x))


class GPT(BaseModel):
    """Byte-level decoder: token + position embeddings, blocks, a head tied to the embedding."""

    def __init__(self, size: ModelConfig, seq_len: int, vocab: int = 256) -> None:
        super().__init__()
        if size.width % size.heads:
            raise ValueError(f"width {size.width} is not divisible by heads {size.heads}")
        self.wte, self.wpe = nn.Embedding(vocab, size.width), nn.Embedding(seq_len, size.width)
        self.blocks = nn.ModuleList(Block(size.width, size.heads) for _ in range(size.layers))
        self.norm = nn.LayerNorm(size.width)
        self.head = nn.Linear(size.width, vocab, bias=False)
        self.head.weight = self.wte.weight  # tied: one matrix reads and writes bytes
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)

    def num_tokens(self, batch: dict) -> torch.Tensor:
        """Real (non-padding) tokens, a device tensor: ThroughputHook's tokens/s."""
        return (batch["labels"] != -100).sum()

    def forward(self, inputs, labels=None, mode="tensor"):
        h = self.wte(inputs) + self.wpe(torch.arange(inputs.shape[1], device=inputs.device))
        for block in self.blocks:
            h = block(h)
        logits = self.head(self.norm(h))
        if mode == "tensor":
            return logits
        nll = F.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="none"
        ).view_as(labels)
        counts = (labels != -100).sum(1)
        if mode == "loss":
            # The loss is a mean over this batch's real tokens; num_items says how many, so
            # accumulated and multi-process updates weight every token alike (short last
            # pieces of documents do not count more).
            tokens = counts.sum()
            return {"loss": nll.sum() / tokens.clamp(min=1), "num_items": tokens}
        return list(zip(nll.sum(1), counts))  # mode == 'predict': per sequence


class Perplexity(BaseMetric):
    """exp(mean negative log-likelihood per real token) over the whole validation set."""

    default_prefix = "val"

    def process(self, data_batch, data_samples) -> None:
        self.results.extend((float(nll), int(n)) for nll, n in data_samples)

    def compute_metrics(self, results: list) -> dict:
        nll = sum(r[0] for r in results) / max(1, sum(r[1] for r in results))
        return {"perplexity": math.exp(nll), "bits_per_byte": nll / math.log(2)}


def build_schedule(cfg: Config) -> list[dict]:
    """Linear warm-up over the first 10% of updates, then cosine decay to lr/10."""
    if cfg.optim.lr_schedule == "constant":
        return []
    updates = math.ceil(cfg.max_iters / cfg.optim.accumulative_counts)
    warmup = updates // 10  # schedules count optimizer updates, not micro-batches
    cosine = dict(type="CosineAnnealingLR", by_epoch=False, begin=warmup, end=updates,
                  eta_min=cfg.optim.lr / 10)  # fmt: skip
    if warmup < 2:  # LinearLR reaches its end factor one step before `end`: needs 2 steps
        return [dict(cosine, begin=0)]
    return [dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=warmup), cosine]


def build_runner(cfg: Config) -> Runner:
    train_set, val_set = build_datasets(cfg)
    set_seed(cfg.seed)  # the model's initial weights are drawn before the Runner seeds
    return Runner(
        model=GPT(PRESETS[cfg.model], cfg.seq_len),
        work_dir=cfg.work_dir,
        train_dataloader=dict(dataset=train_set, batch_size=cfg.batch_size, shuffle=True),
        val_dataloader=dict(dataset=val_set, batch_size=cfg.batch_size),
        val_evaluator=Perplexity(),
        train_cfg=dict(by_epoch=False, max_iters=cfg.max_iters, val_interval=cfg.val_interval),
        optim_wrapper=cfg.optim.to_mmengine(),
        param_scheduler=build_schedule(cfg),
        randomness=dict(seed=cfg.seed),
        mixed_precision=cfg.mixed_precision,
        compile=cfg.compile,
        default_hooks=dict(logger=dict(type="LoggerHook", interval=cfg.log_interval)),
        custom_hooks=[ThroughputHook()],  # tokens/s (and MFU on a known GPU) in the log
    )


@torch.no_grad()
def sample(model: GPT, prompt: str, n: int, seq_len: int, seed: int) -> str:
    """Continue `prompt` by `n` bytes, sampling at temperature 0.8."""
    device = next(model.parameters()).device
    g = torch.Generator(device).manual_seed(seed)
    x = torch.tensor([list(prompt.encode("utf-8"))], device=device)
    model.eval()
    for _ in range(n):
        logits = model(x[:, -seq_len:], mode="tensor")[:, -1].float() / 0.8
        x = torch.cat([x, torch.multinomial(logits.softmax(-1), 1, generator=g)], dim=1)
    return bytes(x[0].tolist()).decode("utf-8", errors="replace")


def main(cfg: Config) -> dict:
    """Train, validate, print a sample; return the last validation metrics (and the sample)."""
    if cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    runner = build_runner(cfg)
    metrics = dict(runner.train())
    if cfg.sample_bytes and runner.accelerator.is_main_process:
        text = sample(unwrap(runner.model), cfg.prompt, cfg.sample_bytes, cfg.seq_len, cfg.seed)
        metrics["sample"] = text
        print(f"validation perplexity {metrics['val/perplexity']:.2f}; sample:\n{text}")
    return metrics


if __name__ == "__main__":
    # Under accelerate launch every process parses the flags; only the first prints.
    first = int(os.environ.get("RANK", 0)) == 0
    with contextlib.redirect_stderr(sys.stderr if first else io.StringIO()):
        cfg = tyro.cli(Config, config=(tyro.conf.OmitArgPrefixes,), console_outputs=first)
    main(cfg)
    PartialState().wait_for_everyone()
    PartialState().destroy_process_group()

"""Token-weighted accumulation under a launcher, run by tests/test_token_accumulation.py.

Usage: ``<launcher> tests/token_accumulation_script.py OUT.json``. A per-token model trains
with the Runner on padded variable-length batches, ``accumulative_counts=3`` and 5
iterations (windows of 3 and 2 micro-batches), once returning ``num_items`` with its
loss and once without. Every process records the batches it saw; the main process then
replays each window as one batch in plain PyTorch (one forward over all the window's
sequences from all processes, a mean over their real tokens, one SGD step) and writes
how far each run's weights are from that reference.
"""

from __future__ import annotations

import copy
import json
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from engine import BaseModel, Hook, Runner
from engine.model.wrappers import unwrap

VOCAB, WIDTH, SEQUENCES, PER_PROCESS_BATCH, ITERS, COUNTS, LR = 11, 6, 20, 2, 5, 3, 0.5


def sequences() -> list[dict]:
    """Lengths from 1 to 12 tokens: micro-batches hold very different token counts."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 13, (SEQUENCES,), generator=g).tolist()
    return [
        {
            "inputs": torch.randint(0, VOCAB, (n,), generator=g),
            "labels": torch.randint(0, VOCAB, (n,), generator=g),
        }
        for n in lengths
    ]


def pad_collate(samples: list[dict]) -> dict:
    """Right-pad to the batch's longest sequence; padded labels are ignored (-100)."""
    longest = max(len(s["inputs"]) for s in samples)
    inputs = torch.zeros(len(samples), longest, dtype=torch.long)
    labels = torch.full((len(samples), longest), -100, dtype=torch.long)
    for row, s in enumerate(samples):
        inputs[row, : len(s["inputs"])] = s["inputs"]
        labels[row, : len(s["labels"])] = s["labels"]
    return {"inputs": inputs, "labels": labels}


class TokenModel(BaseModel):
    def __init__(self, weighted: bool) -> None:
        super().__init__()
        self.weighted = weighted
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, inputs, labels=None, mode="tensor"):
        logits = self.head(torch.tanh(self.embed(inputs)))
        if mode != "loss":
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        if not self.weighted:
            return {"loss": loss}
        return {"loss": loss, "num_items": (labels != -100).sum()}


class RecordBatches(Hook):
    def __init__(self) -> None:
        self.batches: list[dict] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.batches.append({k: v.detach().cpu().clone() for k, v in data_batch.items()})


def train(weighted: bool, initial: dict) -> tuple[dict, list[list[dict]]]:
    model = TokenModel(weighted)
    model.load_state_dict(initial)
    record = RecordBatches()
    runner = Runner(
        model,
        None,
        train_dataloader=dict(
            dataset=sequences(), batch_size=PER_PROCESS_BATCH, collate_fn=pad_collate
        ),
        train_cfg=dict(by_epoch=False, max_iters=ITERS),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=LR), accumulative_counts=COUNTS),
        custom_hooks=[record],
        default_hooks=dict(logger=None),
    )
    runner.train()
    seen = [record.batches]
    if dist.is_initialized():
        seen = [None] * dist.get_world_size()
        dist.all_gather_object(seen, record.batches)
    return copy.deepcopy(unwrap(runner.model).state_dict()), seen


def reference(initial: dict, seen: list[list[dict]]) -> dict:
    """Plain PyTorch: each window is one batch of all its sequences, from every process."""
    model = TokenModel(weighted=False)
    model.load_state_dict(initial)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for start in range(0, ITERS, COUNTS):
        window = [b for batches in seen for b in batches[start : start + COUNTS]]
        inputs = torch.cat([b["inputs"].flatten() for b in window])  # the model is per token
        labels = torch.cat([b["labels"].flatten() for b in window])
        logits = model.head(torch.tanh(model.embed(inputs)))
        F.cross_entropy(logits, labels, ignore_index=-100).backward()
        opt.step()
        opt.zero_grad()
    return model.state_dict()


def max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def main() -> None:
    torch.manual_seed(0)
    initial = copy.deepcopy(TokenModel(weighted=True).state_dict())
    weighted, seen = train(True, initial)
    naive, _ = train(False, initial)
    expected = reference(initial, seen)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank == 0:
        tokens = [int((b["labels"] != -100).sum()) for batches in seen for b in batches]
        report = {
            "processes": len(seen),
            "micro_batches": [len(batches) for batches in seen],
            "tokens_per_micro_batch": tokens,
            "weighted_max_diff": max_diff(weighted, expected),
            "naive_max_diff": max_diff(naive, expected),
            "moved": max_diff(initial, expected),
        }
        with open(sys.argv[1], "w") as f:
            json.dump(report, f)
        print("REPORT", json.dumps(report), flush=True)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

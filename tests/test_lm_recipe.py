"""recipes/train_lm.py: run as a user runs it (tiny preset, seconds), and its parts."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from run_files import run_file

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "train_lm.py"
TINY = ["--model", "tiny", "--seq-len", "32", "--batch-size", "8", "--max-iters", "40",
        "--val-interval", "20", "--log-interval", "10", "--corpus-bytes", "30000",
        "--sample-bytes", "40", "--cpu-threads", "1"]  # fmt: skip


def _load(name: str):
    sys.path.insert(0, str(RECIPE.parent))  # train_lm imports lm_corpus, as a script does
    try:
        spec = importlib.util.spec_from_file_location(name, RECIPE.parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # tyro and dataclasses look the module up by name
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(RECIPE.parent))


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", COLUMNS="1000", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, str(RECIPE), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_tiny_preset_trains_reports_a_finite_perplexity_and_prints_a_sample(tmp_path):
    proc = _run([*TINY, "--work-dir", str(tmp_path / "lm")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in run_file(tmp_path / "lm", "scalars.jsonl").open()]
    losses = [r["loss"] for r in rows if r["mode"] == "train"]
    assert len(losses) == 4
    # from ln(256) = 5.55 (uniform bytes) to well under it in 40 iterations
    assert losses[0] < 5.6 and losses[-1] < losses[0] - 1.0, losses
    val = [r for r in rows if r["mode"] == "val"]
    assert len(val) == 2  # at 20 and at 40
    ppl = [r["val/perplexity"] for r in val]
    assert all(math.isfinite(p) for p in ppl) and ppl[-1] < ppl[0] < 256, ppl
    assert math.isclose(math.log2(ppl[-1]), val[-1]["val/bits_per_byte"], rel_tol=1e-6)
    assert "validation perplexity" in proc.stdout and "sample:\nReturn the " in proc.stdout


def test_bad_flag_is_one_line_before_any_work(tmp_path):
    proc = _run(["--seq-len", "0", "--work-dir", str(tmp_path / "lm")], cwd=tmp_path)
    assert proc.returncode != 0 and "seq_len must be >= 1, got 0" in proc.stderr
    assert not (tmp_path / "lm").exists()


def test_corpus_splits_by_document_and_chunks_shift_by_one_byte():
    corpus = _load("lm_corpus")
    docs = corpus.stdlib_documents(20_000, seed=0)
    assert len({name for name, _ in docs}) == len(docs) >= 2
    text = docs[0][1]
    samples = corpus.chunk([text], seq_len=16)
    assert len(samples) == math.ceil((len(text) - 1) / 16)
    first, last = samples[0], samples[-1]
    assert bytes(first["inputs"].tolist()) == text[:16]
    assert bytes(first["labels"].tolist()) == text[1:17]
    n = (len(text) - 1) % 16 or 16  # the last piece's real tokens
    assert (last["labels"] != -100).sum() == n and (last["labels"][n:] == -100).all()

    lm = _load("train_lm")
    cfg = lm.Config(corpus_bytes=20_000, seq_len=16, val_fraction=0.25)
    train, val = lm.build_datasets(cfg)
    as_bytes = {bytes(s["inputs"].tolist()) for s in val}
    assert len(val) > 0 and not as_bytes & {bytes(s["inputs"].tolist()) for s in train}


def test_gpt_loss_is_the_mean_over_real_tokens_and_says_how_many():
    lm = _load("train_lm")
    torch.manual_seed(0)
    model = lm.GPT(lm.PRESETS["tiny"], seq_len=8)
    inputs = torch.randint(0, 256, (2, 8))
    labels = torch.randint(0, 256, (2, 8))
    labels[1, 3:] = -100  # a short last piece
    out = model(inputs, labels, mode="loss")
    logits = model(inputs, mode="tensor")
    want = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(out["loss"], want)
    assert int(out["num_items"]) == 11
    assert model.head.weight is model.wte.weight  # tied
    # causal: changing the last input byte leaves earlier positions' logits unchanged
    changed = inputs.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 256
    torch.testing.assert_close(model(changed, mode="tensor")[:, :-1], logits[:, :-1])

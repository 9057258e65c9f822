"""A text corpus every Python install carries: the docstrings of the standard library.

Used by recipes/train_lm.py. Nothing is downloaded: each standard-library module's source
is parsed with `ast` and its docstrings (module, classes, functions) become one document.
The text is byte-level (UTF-8), so the vocabulary is the 256 byte values.
"""

from __future__ import annotations

import ast
import random
import sysconfig
from pathlib import Path

import torch

SKIP = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"}


def stdlib_documents(max_bytes: int, seed: int) -> list[tuple[str, bytes]]:
    """``(module path, its docstrings as UTF-8)`` for standard-library modules in a seeded
    order, until ``max_bytes`` of text are collected (parsing all takes seconds)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in root.rglob("*.py") if not SKIP.intersection(p.relative_to(root).parts)
    )
    random.Random(seed).shuffle(files)  # a capped corpus still samples the whole library
    documents, total = [], 0
    for path in files:
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):  # a few files are templates or other encodings
            continue
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        docs = [ast.get_docstring(n) for n in ast.walk(tree) if isinstance(n, kinds)]
        text = "\n\n".join(d for d in docs if d).encode("utf-8")
        if len(text) > 64:  # a line or two teaches little and pads a lot
            documents.append((str(path.relative_to(root)), text))
            total += len(text)
        if total >= max_bytes:
            break
    if len(documents) < 2:
        raise RuntimeError(f"found {len(documents)} documented modules under {root}; need 2")
    return documents


def chunk(documents: list[bytes], seq_len: int) -> list[dict[str, torch.Tensor]]:
    """Cut every document into pieces of ``seq_len + 1`` bytes (never across documents).

    Each sample: ``inputs`` (bytes 0..n-1) and ``labels`` (bytes 1..n), right-padded to
    ``seq_len``; padded labels are -100 (ignored by the loss, not counted as tokens). A
    document's last piece is usually short: batches hold varying numbers of real tokens.
    """
    samples = []
    for text in documents:
        for start in range(0, len(text) - 1, seq_len):
            piece = torch.tensor(list(text[start : start + seq_len + 1]), dtype=torch.long)
            n = len(piece) - 1
            inputs = torch.zeros(seq_len, dtype=torch.long)
            labels = torch.full((seq_len,), -100, dtype=torch.long)
            inputs[:n], labels[:n] = piece[:-1], piece[1:]
            samples.append({"inputs": inputs, "labels": labels})
    return samples

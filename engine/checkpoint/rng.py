"""Random-number state of a process: capture, restore, and a JSON form for checkpoints.

A resumed run draws the same dropout masks as the uninterrupted one only if every
generator the training step reads is back where it was: Python's ``random``, NumPy's
global generator, torch's CPU generator and, when CUDA is in use, every CUDA device's.
(The data order needs none of these: the seedable sampler reseeds from (seed, epoch).)

Example:
    >>> state = capture()
    >>> a = torch.rand(1)
    >>> restore(state)
    >>> torch.equal(torch.rand(1), a)
    True
"""

from __future__ import annotations

import base64
import contextlib
import random
from collections.abc import Iterator
from typing import Any

import torch

try:  # NumPy is optional: torch runs without it.
    import numpy as np
except ImportError:  # pragma: no cover - numpy ships with every torch wheel we test
    np = None


def capture() -> dict[str, Any]:
    """The current states, as live objects (cheap: a few kB copied)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if np is not None:
        state["numpy"] = np.random.get_state()
    # Only read CUDA generators that exist already: querying them would start CUDA.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict[str, Any]) -> None:
    """Set the generators to what `capture` (or `from_json`) returned."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if np is not None and "numpy" in state:
        np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)


@contextlib.contextmanager
def preserved() -> Iterator[None]:
    """Run a block without moving the generators: whatever it draws, they are restored.

    Validation inside training uses it, so that training draws the same numbers whether
    or not (and however often) it validates, and a resumed run stays exact.
    """
    state = capture()
    try:
        yield
    finally:
        restore(state)


def _b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.numpy().tobytes()).decode("ascii")


def _from_b64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def to_json(state: dict[str, Any]) -> dict[str, Any]:
    """`capture` output as JSON values: byte states in base64, the rest as numbers."""
    version, internal, gauss = state["python"]
    out: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss},
        "torch": _b64(state["torch"]),
    }
    if "numpy" in state:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        out["numpy"] = {
            "kind": kind,
            "keys": [int(k) for k in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        }
    if "cuda" in state:
        out["cuda"] = [_b64(s) for s in state["cuda"]]
    return out


def from_json(data: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `to_json`. Raises ``KeyError``/``ValueError`` on malformed input."""
    py = data["python"]
    state: dict[str, Any] = {
        "python": (int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss_next"]),
        "torch": _from_b64(data["torch"]),
    }
    if "numpy" in data and np is not None:
        n = data["numpy"]
        keys = np.asarray(n["keys"], dtype=np.uint32)
        state["numpy"] = (n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"])
    if "cuda" in data:
        state["cuda"] = [_from_b64(s) for s in data["cuda"]]
    return state

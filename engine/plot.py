"""Training curves as a picture: losses, lr and validation metrics against the iteration.

``engine plot WORK_DIR`` calls `plot_curves`; `Runner.train()` calls it at the end of a run
when matplotlib is installed (``pip install 'engine-train[plot]'``). It reads the run
folder's ``scalars.jsonl`` and writes ``curves.png`` next to it.

Example:
    >>> plot_curves("work_dirs/digits")          # its newest run folder
    PosixPath('work_dirs/digits/20261128_201502/curves.png')
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_NOT_SCALARS = {"mode", "epoch", "iter", "step", "time", "data_time", "memory"}


def plotting_available() -> bool:
    """Whether matplotlib is installed (the ``[plot]`` extra)."""
    return importlib.util.find_spec("matplotlib") is not None


def find_scalars(path: str | Path) -> Path:
    """``scalars.jsonl`` of a run folder, or of the newest run folder in a work_dir."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / "scalars.jsonl").is_file():
        return path / "scalars.jsonl"
    runs = sorted(p.parent for p in path.glob("*/scalars.jsonl")) if path.is_dir() else []
    if not runs:
        raise FileNotFoundError(
            f"{path} holds no scalars.jsonl; expected a run folder (work_dir/<timestamp>) or a work_dir"
        )
    return runs[-1] / "scalars.jsonl"  # timestamps sort in time order


def plot_curves(path: str | Path, out: str | Path | None = None) -> Path:
    """Write a PNG of a run's training losses, lr (and grad norm) and validation metrics.

    Args:
        path: a run folder, a work_dir (its newest run folder) or a scalars.jsonl file.
        out: the PNG to write; default ``curves.png`` beside the scalars.

    Returns:
        The PNG's path.

    Raises:
        ImportError: matplotlib is missing (the message names the extra to install).
        FileNotFoundError: no scalars.jsonl; ValueError: it holds no scalar to plot.
    """
    if not plotting_available():
        raise ImportError("plotting needs matplotlib: pip install 'engine-train[plot]'")
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, safe in any thread
    import matplotlib.pyplot as plt

    scalars = find_scalars(path)
    records = [json.loads(line) for line in scalars.read_text().splitlines() if line.strip()]
    panels = _panels(records)
    if not panels:
        raise ValueError(f"{scalars} holds no training or validation scalars to plot")
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels)), sharex=True)
    axes = [axes] if len(panels) == 1 else list(axes)
    for ax, (title, series) in zip(axes, panels):
        for name, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, markersize=3, label=name)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1].set_xlabel("iteration")
    fig.suptitle(scalars.parent.name, fontsize=10)
    fig.tight_layout()
    out = Path(out) if out is not None else scalars.parent / "curves.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _panels(records: list[dict]) -> list[tuple[str, dict[str, tuple[list, list]]]]:
    """(title, {name: (iterations, values)}) for each panel that has something to show."""
    losses: dict[str, tuple[list, list]] = {}
    rates: dict[str, tuple[list, list]] = {}
    norms: dict[str, tuple[list, list]] = {}
    metrics: dict[str, tuple[list, list]] = {}
    for record in records:
        mode, it = record.get("mode"), record.get("iter")
        for key, value in record.items():
            if (
                key in _NOT_SCALARS
                or not isinstance(value, (int, float))
                or isinstance(value, bool)
            ):
                continue
            if mode == "train":
                group = (
                    losses
                    if "loss" in key
                    else rates
                    if key == "lr" or key.endswith(".lr")
                    else norms
                    if "norm" in key
                    else None
                )
            elif mode == "val":
                group, key = metrics, f"val/{key}"
            else:
                group = None
            if group is not None:
                xs, ys = group.setdefault(key, ([], []))
                xs.append(it)
                ys.append(value)
    titles = ("training losses", "learning rate", "gradient norm", "validation")
    return [(t, s) for t, s in zip(titles, (losses, rates, norms, metrics)) if s]

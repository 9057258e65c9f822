"""Experiment trackers (TensorBoard, W&B, ... through Accelerate): checks and hyper-parameters.

Accelerate silently drops a tracker whose package is missing; a run asked to log to
TensorBoard should instead stop at once and say what to install.

Example:
    >>> check_trackers_installed("tensorboard")   # ImportError naming engine-train[tensorboard]
    >>> flat_hparams({"optim": {"lr": 0.01}, "run": {"resume": False}})
    {'optim.lr': 0.01, 'run.resume': False}
"""

from __future__ import annotations

import importlib.util
from typing import Any

# tracker name -> (a module it needs, the pip requirement that brings it)
_PACKAGES = {
    "tensorboard": ("tensorboard", "engine-train[tensorboard]"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
    "comet_ml": ("comet_ml", "comet-ml"),
    "aim": ("aim", "aim"),
    "clearml": ("clearml", "clearml"),
    "dvclive": ("dvclive", "dvclive"),
}


def check_trackers_installed(log_with: Any) -> None:
    """Raise ImportError naming what to install when a tracker asked for by name is missing.

    Args:
        log_with: Accelerate's ``log_with``: None, a name, a tracker object or a list of them.
    """
    names = log_with if isinstance(log_with, (list, tuple)) else [log_with]
    for name in names:
        if not isinstance(name, str) or name.lower() not in _PACKAGES:
            continue  # a tracker object, 'all', or one Accelerate knows better
        module, requirement = _PACKAGES[name.lower()]
        if importlib.util.find_spec(module) is None:
            raise ImportError(
                f"log_with={name!r} needs the {module!r} package: pip install '{requirement}'"
            )


def flat_hparams(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`cfg` flattened to ``{'optim.lr': 0.003, ...}`` with values trackers accept (numbers,
    strings, bools; anything else as a string), for ``init_trackers(config=...)``."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_hparams(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out

"""What rebuilds a saved model: its class, constructor arguments, preprocessor and run config.

Checkpoints and exported weights carry these in their safetensors metadata (string values
under ``engine.*`` keys), so `engine.checkpoint.export.load_exported` can rebuild the model
that produced them and predict with the same preprocessing::

    engine.model_class      "recipes.train:DigitsCNN" ("__main__:DigitsCNN" for a script)
    engine.model_file       the file that defines the class (a script run as __main__)
    engine.model_args       JSON: the constructor's arguments, when they are JSON values
    engine.preprocessor     JSON: the data preprocessor's type and settings (mean, std...)
    engine.config           JSON: the run's config (``Runner(cfg=...)``), when given

Rebuilding imports the named module (or runs the named file), as unpickling would: load
exports you trust, or pass the model yourself.

Example:
    >>> meta = describe_model(DigitsCNN(width=16))
    >>> rebuild_model(meta)        # DigitsCNN(width=16), weights freshly initialised
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

CLASS, FILE, ARGS = "engine.model_class", "engine.model_file", "engine.model_args"
PREPROCESSOR, CONFIG = "engine.preprocessor", "engine.config"


def describe_model(model: nn.Module, config: dict | None = None) -> dict[str, str]:
    """The ``engine.*`` metadata that lets `rebuild_model` make `model` again.

    Args:
        model: the unwrapped model (an `engine.BaseModel` records its constructor arguments).
        config: the run's config as a JSON-ready dict, or None.
    """
    cls = type(model)
    meta = {CLASS: f"{cls.__module__}:{cls.__qualname__}"}
    if cls.__module__ == "__main__":  # a script: only its file can bring the class back
        source = inspect.getsourcefile(cls)
        if source is not None:
            meta[FILE] = str(Path(source).resolve())
    args = _json(_init_arguments(model))
    if args is not None:
        meta[ARGS] = args
    pre = getattr(model, "data_preprocessor", None)
    if isinstance(pre, nn.Module):
        meta[PREPROCESSOR] = _json(_preprocessor_settings(pre)) or "{}"
    if config is not None:
        meta[CONFIG] = _json(config) or "{}"
    return meta


def rebuild_model(meta: dict[str, str], source: Any = "the weights file") -> nn.Module:
    """A new instance of the model `meta` describes (weights as its constructor leaves them).

    Raises:
        ValueError: `meta` does not name a class, or its module or arguments are not available;
            the message says to pass the model instead.
    """
    fix = "build the model yourself and pass it (load_exported(path, model=MyModel(...)))"
    if CLASS not in meta:
        raise ValueError(f"{source} does not say which model it holds; {fix}")
    module_name, _, qualname = meta[CLASS].partition(":")
    module = _import(module_name, meta.get(FILE), source, fix)
    cls: Any = module
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise ValueError(f"{source}: {meta[CLASS]} is not defined in {module.__name__}; {fix}")
    if ARGS not in meta and _required_parameters(cls):
        raise ValueError(
            f"{source}: {meta[CLASS]} needs constructor arguments that were not recorded; {fix}"
        )
    kwargs = json.loads(meta.get(ARGS, "{}"))
    return cls(**kwargs)


def _import(name: str, file: str | None, source: Any, fix: str) -> Any:
    if name != "__main__":
        try:
            return importlib.import_module(name)
        except ImportError:
            if file is None:
                raise ValueError(f"{source}: cannot import {name}; {fix}") from None
    if file is None or not Path(file).is_file():
        raise ValueError(
            f"{source}: the model was defined in {file or 'a script'}, not found; {fix}"
        )
    # A script runs as a module of its own name: its `if __name__ == "__main__"` block stays idle.
    name = f"engine_model_source_{Path(file).stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


def _init_arguments(model: nn.Module) -> dict[str, Any] | None:
    """The constructor's arguments by name, defaults filled in (BaseModel records the call)."""
    recorded = getattr(model, "_init_args", None)
    if recorded is None:
        return None if _required_parameters(type(model)) else {}
    args, kwargs = recorded
    try:
        bound = inspect.signature(type(model)).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    params = inspect.signature(type(model)).parameters
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = params[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None  # positional extras have no name to pass them by
        else:
            out[name] = value
    return out


def _required_parameters(cls: type) -> list[str]:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in params if p.default is p.empty and p.kind not in kinds]


def _preprocessor_settings(pre: nn.Module) -> dict[str, Any]:
    """Type and plain settings of a data preprocessor, normalisation statistics included."""
    cls = type(pre)
    settings: dict[str, Any] = {"type": f"{cls.__module__}:{cls.__qualname__}"}
    for key, value in vars(pre).items():
        if not key.startswith("_") and key != "training" and _json(value) is not None:
            settings[key] = value
    for key, value in pre.named_buffers(recurse=False):
        if not key.startswith("_") and isinstance(value, torch.Tensor):
            settings[key] = value.detach().float().cpu().flatten().tolist()
    return settings


def _json(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return None

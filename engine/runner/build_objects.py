"""``dict(type=...)`` to objects at the Runner's edge: a class, engine's name, or a registered one.

One rule for the model, its data preprocessor, hooks and datasets (metrics resolve the same
way in `engine.evaluator.metrics`): ``type`` may be a class or a function (called with the other keys), one of
engine's own names (an explicit table passed in by the caller), or a name ported code
registered in MMEngine's registry for that kind (`engine.registry`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from engine.model.base_model import build_preprocessor
from engine.model.fsdp2 import FSDP2_NAMES
from engine.model.wrappers import DEFAULT_WRAPPER_NAMES, FSDP_WRAPPER_NAMES
from engine.registry import MODEL_WRAPPERS, MODELS, Registry

logger = logging.getLogger("engine")
_ENGINE_WRAPPERS = {*DEFAULT_WRAPPER_NAMES, *FSDP_WRAPPER_NAMES, *FSDP2_NAMES, "separate",
                    "MMSeparateDistributedDataParallel"}  # fmt: skip


def resolve_type(kind: Any, stock: Mapping[str, Any], registry: Registry, what: str) -> Callable:
    """The class or function `kind` names; a one-line error listing what is accepted."""
    if callable(kind) and not isinstance(kind, str):
        return kind
    if isinstance(kind, str):
        if kind in stock:
            return stock[kind]
        found = registry.get(kind)
        if found is not None:
            return found
    raise ValueError(
        f"{what} type {kind!r} is unknown; accepted: a class, one of {sorted(stock)} or a name "
        f"registered with engine.registry.{_registry_name(registry)}.register_module()"
    )


def _registry_name(registry: Registry) -> str:
    return {"model": "MODELS", "dataset": "DATASETS", "metric": "METRICS", "hook": "HOOKS"}.get(
        registry.name, registry.name.upper()
    )


def build_object(
    cfg: Any,
    registry: Registry,
    what: str,
    stock: Mapping[str, Any] | None = None,
    default_args: dict | None = None,
) -> Any:
    """`cfg` built if it is ``dict(type=...)``; anything else is returned as it is."""
    if not isinstance(cfg, dict) or "type" not in cfg:
        return cfg
    args = dict(default_args or {})
    args.update(cfg)
    factory = resolve_type(args.pop("type"), stock or {}, registry, what)
    try:
        return factory(**args)
    except TypeError as err:  # a misspelt argument: say which type, and what was passed
        name = getattr(factory, "__name__", factory)
        raise TypeError(f"{what} {name} rejected its arguments {sorted(args)}: {err}") from None


def build_model(model: Any, data_preprocessor: Any = None) -> nn.Module:
    """The model from a module, ``dict(type=...)`` or a callable with no arguments (a class,
    a factory); the Runner calls this after seeding, so the initial weights repeat.
    `data_preprocessor` (a module or a dict) replaces the model's; a model dict without
    its own ``data_preprocessor`` gets it as an argument, as in MMEngine."""
    if isinstance(model, dict):
        if data_preprocessor is not None and "data_preprocessor" not in model:
            model = {**model, "data_preprocessor": data_preprocessor}
            data_preprocessor = None
        model = build_object(model, MODELS, "model")
    elif callable(model) and not isinstance(model, nn.Module):
        model = model()
    if not isinstance(model, nn.Module):
        raise TypeError(
            "model must be an nn.Module (an engine.BaseModel), a dict(type=...) or a callable "
            f"returning one, got {type(model).__name__}"
        )
    if data_preprocessor is not None:
        model.data_preprocessor = build_preprocessor_any(data_preprocessor)
    return model


def build_preprocessor_any(cfg: Any) -> nn.Module:
    """A data preprocessor from a module, ``dict(type=<class or registered name>)`` or
    engine's ``dict(type='ImgDataPreprocessor', ...)``."""
    if isinstance(cfg, dict) and ("type" in cfg and not isinstance(cfg["type"], str)):
        return build_object(cfg, MODELS, "data_preprocessor")
    if isinstance(cfg, dict) and MODELS.get(cfg.get("type", "")) is not None:
        return build_object(cfg, MODELS, "data_preprocessor")
    return build_preprocessor(cfg)


def check_model_arg(model: Any) -> None:
    """Before any work: the model is a module, a dict with ``type`` or a callable that
    takes no arguments (a class or a factory)."""
    if isinstance(model, nn.Module) or (isinstance(model, dict) and "type" in model):
        return
    if callable(model) and _takes_no_arguments(model):
        return
    raise TypeError(
        "model must be an nn.Module (an engine.BaseModel), a dict(type=...) or a callable "
        f"with no arguments returning one, got {type(model).__name__}"
    )


def _takes_no_arguments(factory: Any) -> bool:
    try:
        inspect.signature(factory).bind()
    except TypeError:
        return False
    except ValueError:  # a builtin without a signature: let the call decide
        return True
    return True


def registered_model_wrapper(model_wrapper: Any, num_processes: int) -> Any:
    """A wrapper class ported code registered in ``MODEL_WRAPPERS`` (by name, or as a dict's
    ``type``) as `engine.model.wrappers.wrap_model` takes it; anything else unchanged.

    As in MMEngine, a single process runs the model unwrapped (its wrappers exist for the
    gradient reduction); with several, the class is built as ``cls(module=model, **options)``.
    """
    kind = model_wrapper.get("type") if isinstance(model_wrapper, dict) else model_wrapper
    # engine's own names keep engine's wrapping, registered or not
    own = isinstance(kind, str) and kind in _ENGINE_WRAPPERS
    cls = MODEL_WRAPPERS.get(kind) if isinstance(kind, str) and not own else None
    if cls is None:
        return model_wrapper
    if num_processes == 1:
        logger.info(
            "model_wrapper %s: not distributed, the model runs unwrapped (as MMEngine)", kind
        )
        return None
    options = (
        {k: v for k, v in model_wrapper.items() if k != "type"}
        if isinstance(model_wrapper, dict)
        else {}
    )

    def build(model: nn.Module, accelerator: Any) -> nn.Module:
        if (
            issubclass(cls, nn.parallel.DistributedDataParallel)
            and accelerator.device.type == "cuda"
        ):
            options.setdefault("device_ids", [accelerator.local_process_index])
        return cls(module=model, **options)

    build.__name__ = kind
    return build

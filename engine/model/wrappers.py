"""Distributed model wrappers: Accelerate's default, per-module ('separate') and custom.

The process group always comes from the launcher (``accelerate launch``, ``torchrun``);
this module only decides *what* Accelerate wraps, and which wrappers must skip their
gradient reduction while an accumulation window is open (`no_sync`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from torch import nn

from engine.model.base_model import attach_wrapper, wrapper_of
from engine.model.fsdp2 import FSDP2_NAMES, fully_shard_model, is_fsdp2
from engine.model.mm_ddp import MMDistributedDataParallel

_SEPARATE_NAMES = ("separate", "MMSeparateDistributedDataParallel")
DEFAULT_WRAPPER_NAMES = ("MMDistributedDataParallel", "DistributedDataParallel")
FSDP_WRAPPER_NAMES = ("MMFullyShardedDataParallel", "FullyShardedDataParallel")
_STEPS = ("train_step", "val_step", "test_step")


def wrap_model(model: nn.Module, accelerator: Any, model_wrapper: Any = None) -> nn.Module:
    """Prepare `model` for the run and return what the loops should hold.

    Args:
        model: the user's model (an `engine.BaseModel`).
        accelerator: the run's ``Accelerator``.
        model_wrapper: ``None`` (Accelerate wraps the whole model: DDP, FSDP, DeepSpeed as
            configured by ``accelerate config``/``accelerate launch``); ``'separate'`` (also
            MMEngine's ``'MMSeparateDistributedDataParallel'``) prepares every direct child
            with trainable parameters on its own, as GANs need; a callable
            ``(model, accelerator) -> model`` installing a custom wrapper (a class works).
            MMEngine's dict form is accepted: ``dict(type=..., **ddp_options)``, where the
            options are `accelerate.DistributedDataParallelKwargs` fields such as
            ``find_unused_parameters`` or ``broadcast_buffers``.

    Returns:
        The model the loops call ``train_step``/``val_step``/``test_step`` on.

    Example:
        >>> runner = Runner(gan, work_dir, model_wrapper='separate',
        ...                 optim_wrapper=dict(generator=dict(optimizer=dict(type='Adam', lr=2e-4)),
        ...                                    discriminator=dict(optimizer=dict(type='Adam', lr=2e-4))))
    """
    options: dict = {}
    if isinstance(model_wrapper, dict):
        options = dict(model_wrapper)
        if "type" not in options:
            raise ValueError(
                f"model_wrapper dict needs a 'type', got keys {sorted(options)}; e.g. "
                "dict(type='MMSeparateDistributedDataParallel', find_unused_parameters=True)"
            )
        model_wrapper = options.pop("type")
    if model_wrapper is MMDistributedDataParallel:  # the class means what its name means
        model_wrapper = "MMDistributedDataParallel"
    if isinstance(model_wrapper, str) and model_wrapper in FSDP2_NAMES:
        return fully_shard_model(model, accelerator, **options)
    if isinstance(model_wrapper, str) or model_wrapper is None:
        with _ddp_options(accelerator, options):
            if model_wrapper is None or model_wrapper in DEFAULT_WRAPPER_NAMES:
                return prepare_model(model, accelerator)
            if model_wrapper in FSDP_WRAPPER_NAMES:
                return _prepare_fsdp(model, accelerator)
            if model_wrapper in _SEPARATE_NAMES:
                return wrap_separately(model, accelerator)
    elif callable(model_wrapper):
        wrapped = model_wrapper(model, accelerator, **options)
        missing = [name for name in _STEPS if not callable(getattr(wrapped, name, None))]
        if missing:
            raise TypeError(
                f"model_wrapper {getattr(model_wrapper, '__name__', model_wrapper)!r} returned "
                f"{type(wrapped).__name__}, which lacks {', '.join(missing)}; a custom wrapper "
                "must define train_step, val_step and test_step (delegate to the model if unchanged)"
            )
        return wrapped
    raise ValueError(
        f"model_wrapper {model_wrapper!r} is unknown; accepted: None, 'separate' "
        "(or 'MMSeparateDistributedDataParallel'), 'MMDistributedDataParallel', 'fsdp2', "
        "a dict with one of these as 'type', or a callable (model, accelerator) -> model"
    )


def prepare_model(model: nn.Module, accelerator: Any) -> nn.Module:
    """Let Accelerate wrap the whole model (DDP, FSDP or DeepSpeed as configured) and route
    the model's own ``train_step``/``val_step`` forward passes through that wrapper.

    Custom wrappers call this for the module they train.

    Returns:
        The prepared module (the model itself in a single process).
    """
    prepared = accelerator.prepare_model(model)
    attach_wrapper(accelerator.unwrap_model(prepared), prepared)
    return prepared


def wrap_separately(model: nn.Module, accelerator: Any) -> nn.Module:
    """Prepare every direct child of `model` that has trainable parameters on its own.

    Each child becomes its own DDP (or FSDP) module in place, so a GAN's generator and
    discriminator reduce their gradients independently and each member of an
    `OptimWrapperDict` can skip the reduction of its own module (``no_sync``). Children
    without trainable parameters (the data preprocessor) stay as they are. The model's
    ``state_dict`` keeps the plain keys (``generator.0.weight``, never
    ``generator.module.0.weight``), so checkpoints load with and without the launcher.

    Returns:
        `model` itself, its wrapped children replaced.
    """
    _refuse_joint_only(accelerator)
    model.to(accelerator.device)
    for name, child in list(model.named_children()):
        if not any(p.requires_grad for p in child.parameters()):
            continue
        prepared = accelerator.prepare_model(child)
        if prepared is not child:
            if isinstance(getattr(prepared, "module", None), nn.Module):
                _keep_plain_keys(prepared)
            if hasattr(prepared, "require_backward_grad_sync"):
                _no_reduction_while_frozen(prepared)
            setattr(model, name, prepared)
    return model


def _refuse_joint_only(accelerator: Any) -> None:
    """DeepSpeed and Accelerate's FSDP2 build from the model and its optimizers together, so
    they cannot wrap children one at a time."""
    kind = getattr(getattr(accelerator, "distributed_type", None), "value", None)
    if kind == "DEEPSPEED" or (kind == "FSDP" and getattr(accelerator, "is_fsdp2", False)):
        name = "DeepSpeed" if kind == "DEEPSPEED" else "FSDP version 2"
        raise ValueError(
            f"model_wrapper='separate' prepares each child on its own, which {name} cannot "
            "(it prepares the model with its optimizers): use model_wrapper='fsdp2' (each "
            "child's optimizer over sharded parameters), or launch with DDP or FSDP version 1"
        )


def distributed_wrappers(module: nn.Module) -> list[nn.Module]:
    """The wrappers (DDP, FSDP) that reduce the gradients of `module`'s parameters.

    `module` itself if it is one; the wrapper Accelerate put around it (whole-model DDP,
    `prepare_model`); else every wrapped sub-module (``'separate'``, custom wrappers).
    """
    if _reduces_gradients(module):
        return [module]
    owner = wrapper_of(module)
    if owner is not None:
        return [owner]
    return [w for child in module.children() for w in distributed_wrappers(child)]


@contextlib.contextmanager
def no_sync(accelerator: Any, module: nn.Module) -> Iterator[None]:
    """``accelerator.no_sync`` for every wrapper that reduces `module`'s gradients.

    Unlike MMEngine's ``MMSeparateDistributedDataParallel.no_sync``, children that are not
    wrapped (a preprocessor without parameters) are skipped instead of crashing.
    """
    with contextlib.ExitStack() as stack:
        for wrapper in distributed_wrappers(module):
            if not is_fsdp2(wrapper):  # FSDP2 reads its flag in the backward: set_gradient_sync
                stack.enter_context(accelerator.no_sync(wrapper))
        yield


def _reduces_gradients(module: nn.Module) -> bool:
    # DDP and FSDP1 have no_sync; FSDP2 modules have set_requires_gradient_sync.
    cls = type(module)
    return callable(getattr(cls, "no_sync", None)) or callable(
        getattr(cls, "set_requires_gradient_sync", None)
    )


@contextlib.contextmanager
def _ddp_options(accelerator: Any, options: dict) -> Iterator[None]:
    """Apply MMEngine's ``model_wrapper_cfg`` DDP options (``find_unused_parameters``...)
    through Accelerate's ``DistributedDataParallelKwargs`` while the model is prepared."""
    if not options:
        yield
        return
    from accelerate.utils import DistributedDataParallelKwargs

    accepted = {f.name for f in dataclasses.fields(DistributedDataParallelKwargs)}
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(
            f"model_wrapper options {sorted(unknown)} are unknown; accepted (DDP options): {sorted(accepted)}"
        )
    previous = accelerator.ddp_handler
    base = dataclasses.asdict(previous) if previous is not None else {}
    accelerator.ddp_handler = DistributedDataParallelKwargs(**{**base, **options})
    try:
        yield
    finally:
        accelerator.ddp_handler = previous


def _prepare_fsdp(model: nn.Module, accelerator: Any) -> nn.Module:
    from accelerate.utils import DistributedType

    if accelerator.num_processes > 1 and accelerator.distributed_type != DistributedType.FSDP:
        raise ValueError(
            "model_wrapper 'MMFullyShardedDataParallel' asks for FSDP, but the launcher set up "
            f"{accelerator.distributed_type.value}; launch with `accelerate launch --use_fsdp ...` "
            "(or an `accelerate config` that chooses FSDP) and leave model_wrapper=None"
        )
    return prepare_model(model, accelerator)


def _no_reduction_while_frozen(ddp: nn.Module) -> None:
    """Run a forward whose parameters are all frozen as a ``no_sync`` forward.

    A GAN freezes the discriminator (``requires_grad_(False)``) while the generator learns
    through it. DDP's forward would still arm the reducer for a backward that never reaches
    the frozen parameters, and the armed reducer then all-reduces the discriminator's next
    micro-batch, ``no_sync`` or not. With every parameter frozen there is nothing to reduce.
    """
    saved: list[bool | None] = []

    def before(module: nn.Module, args: Any) -> None:
        frozen = not any(p.requires_grad for p in module.parameters())
        saved.append(module.require_backward_grad_sync if frozen else None)
        if frozen:
            module.require_backward_grad_sync = False

    def after(module: nn.Module, args: Any, output: Any) -> None:
        value = saved.pop()
        if value is not None:
            module.require_backward_grad_sync = value

    ddp.register_forward_pre_hook(before)
    ddp.register_forward_hook(after, always_call=True)


def _keep_plain_keys(wrapper: nn.Module) -> None:
    """Make `wrapper`'s state dict read and write its inner module's keys (no ``module.``)."""
    wrapper.register_state_dict_post_hook(_strip_module_prefix)
    wrapper.register_load_state_dict_pre_hook(_add_module_prefix)


def _strip_module_prefix(module: nn.Module, state_dict: dict, prefix: str, _meta: Any) -> None:
    inner = prefix + "module."
    items = list(state_dict.items())
    state_dict.clear()  # re-insert in order, renamed
    for key, value in items:
        state_dict[prefix + key[len(inner) :] if key.startswith(inner) else key] = value
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        for key in [k for k in metadata if k == inner[:-1] or k.startswith(inner)]:
            value = metadata.pop(key)
            if key != inner[:-1]:
                metadata[prefix + key[len(inner) :]] = value


def _add_module_prefix(module: nn.Module, state_dict: dict, prefix: str, *_: Any) -> None:
    inner_keys = set(module.module.state_dict(keep_vars=True))
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        if rest in inner_keys:  # a plain key; an already prefixed one is left alone
            state_dict[prefix + "module." + rest] = state_dict.pop(key)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP/FSDP wrapper (e.g. ``unwrap(self.generator)`` after
    ``'separate'`` wrapping, to call its own methods); other modules are returned as is."""
    while _reduces_gradients(module) and isinstance(getattr(module, "module", None), nn.Module):
        module = module.module
    return module


class MMSeparateDistributedDataParallel(nn.Module):
    """MMEngine's wrapper class, for custom wrappers ported from MMEngine: subclass it and
    override ``train_step``, then pass the class as ``Runner(model_wrapper=...)``.

    It wraps every trainable child of `module` on its own (as ``model_wrapper='separate'``)
    and delegates ``train_step``/``val_step``/``test_step``, ``data_preprocessor`` and
    ``forward`` to the model, so the seed's ``CustomDistributedDataParallel`` ports with
    its imports changed.

    Args:
        module: the model (an `engine.BaseModel`).
        accelerator: the run's ``Accelerator``; None (MMEngine's ``(module, **kwargs)`` call,
            the process group already started) wraps each trainable child in
            `MMDistributedDataParallel` with `ddp_options` as its arguments.
        **ddp_options: ``DistributedDataParallelKwargs`` fields (``find_unused_parameters``...).

    Example:
        >>> class TwoPass(MMSeparateDistributedDataParallel):
        ...     def train_step(self, data, optim_wrapper):
        ...         data = self.data_preprocessor(data, training=True)
        ...         ...
        >>> Runner(model, work_dir, ..., model_wrapper=TwoPass)
    """

    def __init__(self, module: nn.Module, accelerator: Any = None, **ddp_options: Any) -> None:
        super().__init__()
        if accelerator is None:
            for name, child in list(module.named_children()):
                if any(p.requires_grad for p in child.parameters()):
                    setattr(module, name, MMDistributedDataParallel(child, **ddp_options))
            self.module = module
            return
        with _ddp_options(accelerator, ddp_options):
            self.module = wrap_separately(module, accelerator)

    @property
    def data_preprocessor(self) -> nn.Module:
        return self.module.data_preprocessor

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def train_step(self, data: Any, optim_wrapper: Any) -> Any:
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data: Any) -> Any:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> Any:
        return self.module.test_step(data)

"""`OptimWrapperDict`: several named `OptimWrapper`s, one per sub-module (a GAN).

The dict only reads and forwards: ``zero_grad``, the accumulation position, the lr and
momentum per member (keys ``'<name>.lr'``) and a nested state dict. Updating is ambiguous
for a dict, so ``update_params``/``backward``/``step``/``optim_context`` raise and name
the members to call instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import nn

from engine.optim.optim_wrapper import OptimWrapper


class MemberTypeError(TypeError, AssertionError):
    """A member that is no OptimWrapper (an AssertionError too, as MMEngine raises)."""


class OptimWrapperDict(Mapping):
    """Several named `OptimWrapper`s, one per sub-module (a GAN's generator and discriminator).

    A custom ``train_step`` calls the members: ``ow['generator'].update_params(loss)``.

    Example:
        >>> ow = OptimWrapperDict(generator=OptimWrapper(g_opt), discriminator=OptimWrapper(d_opt))
        >>> ow.get_lr()
        {'generator.lr': [0.0002], 'discriminator.lr': [0.0002]}
    """

    def __init__(self, **optim_wrappers: OptimWrapper) -> None:
        for name, wrapper in optim_wrappers.items():
            if not isinstance(wrapper, OptimWrapper):
                raise MemberTypeError(
                    f"`OptimWrapperDict` only accepts OptimWrapper members: {name!r} is a "
                    f"{type(wrapper).__name__} (wrap it: OptimWrapper(optimizer))"
                )
        self.optim_wrappers = optim_wrappers

    def __getitem__(self, key: str) -> OptimWrapper:
        if key not in self.optim_wrappers:
            raise KeyError(f"no optim wrapper named {key!r}; members: {list(self.optim_wrappers)}")
        return self.optim_wrappers[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.optim_wrappers)

    def __len__(self) -> int:
        return len(self.optim_wrappers)

    def _use_a_member(self, what: str) -> NotImplementedError:
        return NotImplementedError(
            f"OptimWrapperDict.{what}() is ambiguous: `{what}` should be called by each member; call it on a member, e.g. "
            f"optim_wrapper[{next(iter(self.optim_wrappers), 'name')!r}].{what}(...); members: {list(self.optim_wrappers)}"
        )

    def update_params(self, *args: Any, **kwargs: Any) -> None:
        raise self._use_a_member("update_params")

    def backward(self, *args: Any, **kwargs: Any) -> None:
        raise self._use_a_member("backward")

    def step(self, *args: Any, **kwargs: Any) -> None:
        raise self._use_a_member("step")

    def optim_context(self, *args: Any, **kwargs: Any) -> None:
        raise self._use_a_member("optim_context")

    def zero_grad(self, **kwargs: Any) -> None:
        for wrapper in self.optim_wrappers.values():
            wrapper.zero_grad(**kwargs)

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        for wrapper in self.optim_wrappers.values():
            wrapper.initialize_count_status(model, init_counts, max_counts)

    @property
    def param_groups(self) -> dict[str, list[dict]]:
        """Each member's param groups, keyed by member name (MMEngine's shape)."""
        return {name: wrapper.param_groups for name, wrapper in self.optim_wrappers.items()}

    def get_lr(self) -> dict[str, list[float]]:
        return {f"{name}.lr": w.get_lr()["lr"] for name, w in self.optim_wrappers.items()}

    def get_momentum(self) -> dict[str, list[float]]:
        return {
            f"{name}.momentum": w.get_momentum()["momentum"]
            for name, w in self.optim_wrappers.items()
        }

    def state_dict(self) -> dict:
        return {name: w.state_dict() for name, w in self.optim_wrappers.items()}

    def load_state_dict(self, state_dict: dict) -> None:
        missing = set(self.optim_wrappers) - set(state_dict)
        if missing:
            raise KeyError(
                f"optimizer state has no entry for {sorted(missing)}; it has {sorted(state_dict)}"
            )
        for name, wrapper in self.optim_wrappers.items():
            wrapper.load_state_dict(state_dict[name])

    def __repr__(self) -> str:
        lines = [f"name: {name}\n{wrapper!r}" for name, wrapper in self.optim_wrappers.items()]
        return "OptimWrapperDict(\n" + "\n".join(lines) + "\n)"


def members(optim_wrapper: Any) -> list[OptimWrapper]:
    """The `OptimWrapper`s inside `optim_wrapper`: an `OptimWrapperDict`'s members in
    order, or the wrapper itself. (Run-wide counts, such as updates per epoch, follow the
    first one.)"""
    inner = getattr(optim_wrapper, "optim_wrappers", None)
    return list(inner.values()) if inner else [optim_wrapper]


def named_members(optim_wrapper: Any) -> dict[str, OptimWrapper]:
    """`members` by name: an `OptimWrapperDict`'s member names, or ``'optim_wrapper'`` for
    a single wrapper (the keys of `TrainState.windows`)."""
    inner = getattr(optim_wrapper, "optim_wrappers", None)
    return dict(inner) if inner else {"optim_wrapper": optim_wrapper}

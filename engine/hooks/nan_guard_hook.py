"""`NanGuardHook`: what a run does when its loss turns NaN or infinite (``nan_policy``).

``Runner(nan_policy=...)`` installs it:

- ``'stop'`` (the default): training stops at the first check that sees a non-finite loss,
  with a one-line ``FloatingPointError`` naming the iterations and the loss keys. The
  error is raised where the check runs, so no later hook runs: no checkpoint is written
  from then on, and the last good one stays the latest.
- ``'skip'``: an optimizer update whose gradients are non-finite (which a non-finite loss
  makes them) is skipped: weights and optimizer state (momentum, Adam's moments and step
  count) stay as they were, as if that window's batches had not been there. Checks log
  how many updates were skipped. The gradients, not each process's loss, decide: they are
  reduced across processes already, so every process skips the same updates. Sharded
  (DTensor) gradients differ by process: each judges its own shards, and one all-reduce
  of the flag per update makes them all skip alike.
- ``'ignore'``: no hook, nothing is checked (MMEngine's behaviour).

No host sync per iteration. The check runs at the log interval: with a `LoggerHook` it
reads the `LoggerHook.nonfinite_keys` that hook computes from its window sums (a host
read it makes anyway); without one this hook sums the losses on the device itself and
reads the sums every `interval` iterations and at epoch ends. With several processes, 'stop' agrees on the
result at each check (one all-reduce per check), so all processes stop together.

Checkpoints: with 'stop' and 'skip' every save first checks that the weights are finite
(one host read, next to a save that copies every weight to the host) and, if not, raises
before writing anything. So a NaN between two checks cannot replace the last good
checkpoint either.

How 'skip' skips: before each optimizer step (a torch step pre-hook) a device-side flag
says whether any gradient is NaN/inf (an inf-norm over the gradients: one pass over them
per update). Fused optimizers (torch's SGD, Adam and AdamW with ``fused=True``, which
engine picks by default) take it as ``found_inf``, as from fp16's loss scaler, and skip
the update on the device: no sync. Other optimizers (and fused SGD's first update with
momentum, whose buffers do not exist yet) get their gradients cleared when it is set,
which torch's optimizers treat as "no update"; that reads the flag on the host once per
update, not per micro-batch. Under fp16 the loss scaler skips such updates already.
Schedules count skipped updates as done (as with a loss scaler).

Example:
    >>> Runner(..., nan_policy='skip')
"""

from __future__ import annotations

import itertools
import logging
import math
import weakref
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint.io import LAST
from engine.hooks.hook import Hook
from engine.hooks.logger_hook import LoggerHook
from engine.optim.optim_wrapper_dict import members

logger = logging.getLogger("engine")

NAN_POLICIES = ("stop", "skip", "ignore")
_ADVICE = "lower the lr, clip gradients (clip_grad=dict(max_norm=1.0)) or pass nan_policy='skip'"


def check_nan_policy(policy: Any) -> str:
    if policy not in NAN_POLICIES:
        raise ValueError(
            f"nan_policy {policy!r} is unknown; accepted: {', '.join(map(repr, NAN_POLICIES))}"
        )
    return policy


class NanGuardHook(Hook):
    """Stop on, or skip updates with, non-finite losses; see the module docstring.

    Args:
        policy: ``'stop'`` or ``'skip'`` (for ``'ignore'``, the Runner adds no hook).
        interval: iterations between checks when the run has no `LoggerHook` (with one,
            its log interval is used).

    Attributes:
        skipped: updates skipped so far (counted at each check).
    """

    priority = "LOW"  # after LoggerHook computes nonfinite_keys, before CheckpointHook saves

    def __init__(self, policy: str = "stop", interval: int = 10) -> None:
        if check_nan_policy(policy) == "ignore":
            raise ValueError(
                "NanGuardHook policy must be 'stop' or 'skip'; for 'ignore' add no hook"
            )
        self.policy = policy
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"NanGuardHook interval must be an int >= 1, got {interval!r}")
        self.interval = interval
        self.skipped = 0
        self._log_hook: Any = None
        self._seen: Any = None  # the LoggerHook's last window, to notice a new one
        self._sums: dict[str, torch.Tensor] = {}  # without a LoggerHook: window sums
        self._first = 1  # the first iteration of the window being checked
        self._skipped_now: torch.Tensor | None = None  # device count since the last check
        self._hooked: weakref.WeakSet = weakref.WeakSet()  # optimizers with our step hooks
        self._fused_ready: weakref.WeakSet = weakref.WeakSet()

    # -- checks ---------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        self._log_hook = runner.hooks.get(LoggerHook)
        self._seen = self._log_hook.last_scalars if self._log_hook is not None else None
        self._sums, self._first = {}, runner.state.iter + 1
        if self.policy == "skip":
            self._hook_optimizers(runner)

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self._log_hook is None:
            self._accumulate(outputs)
            state = runner.state
            if state.iter % self.interval and state.iter != state.max_iters:
                return
        self._check(runner)

    def after_train_epoch(self, runner) -> None:
        self._check(runner)  # a LoggerHook window that ended with the epoch, or our sums

    def after_train(self, runner) -> None:
        self._check(runner)

    def _accumulate(self, outputs: Any) -> None:
        # One device add per loss and iteration, as LoggerHook does: a NaN/inf anywhere in
        # the window makes the window's sum non-finite. (Only finite losses beyond 1e38
        # could overflow it, and those are a failure too.)
        for key, value in (outputs or {}).items():
            if "loss" in key and isinstance(value, torch.Tensor):
                value = value.detach().float()
                value = value if value.ndim == 0 else value.sum()
                self._sums[key] = self._sums[key] + value if key in self._sums else value

    def _check(self, runner) -> None:
        """Judge the window that ended: a new LoggerHook window, or our own sums."""
        if self._log_hook is not None:
            if self._log_hook.last_scalars is self._seen:  # it writes a new dict per window
                return
            self._seen = self._log_hook.last_scalars
            bad = [k for k in self._log_hook.nonfinite_keys if "loss" in k]
        elif self._sums:
            keys, sums = list(self._sums), self._sums
            self._sums = {}
            values = torch.stack([sums[k] for k in keys]).tolist()  # the check's one read
            bad = [k for k, v in zip(keys, values) if not math.isfinite(v)]
        else:
            return
        skipped = self._take_skipped()
        state = runner.state
        first, self._first = self._first, state.iter + 1
        where = (
            f"iterations {first}-{state.iter}" if first < state.iter else f"iteration {state.iter}"
        )
        if state.max_epochs is not None:
            where += f" (epoch {state.epoch + 1})"
        if skipped:
            self.skipped += skipped
            losses = f" (non-finite losses: {bad})" if bad else ""
            logger.warning(
                "nan_policy='skip': skipped %d update(s) with non-finite gradients in %s%s",
                skipped, where, losses,
            )  # fmt: skip
        if self.policy != "stop" or not _any_process(runner, bool(bad)):
            return
        keys = bad or "a loss on another process"
        raise FloatingPointError(
            f"nan_policy='stop': non-finite {keys} in {where}; training stopped before any "
            f"later checkpoint{_latest(runner)}; {_ADVICE}"
        )

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = getattr(runner, "_raw_model", None) or runner.model
        tensors = [
            t for t in itertools.chain(model.parameters(), model.buffers()) if t.is_floating_point()
        ]
        # Sharded (DTensor) weights: each process checks its own shards, and all agree.
        bad = bool(tensors) and bool(_any_nonfinite(tensors).item())
        if _any_process(runner, bad):
            raise FloatingPointError(
                f"nan_policy={self.policy!r}: the model's weights hold NaN/inf at iteration "
                f"{runner.state.iter}, so this checkpoint was not written{_latest(runner)}; {_ADVICE}"
            )

    # -- skipping updates -----------------------------------------------------------------
    def _hook_optimizers(self, runner) -> None:
        if getattr(runner.accelerator, "scaler", None) is not None:
            return  # fp16: the loss scaler skips updates with non-finite gradients itself
        for optimizer in _torch_optimizers(runner.optim_wrapper):
            if optimizer not in self._hooked:  # once per optimizer, however often train() runs
                self._hooked.add(optimizer)
                optimizer.register_step_pre_hook(self._before_step)
                optimizer.register_step_post_hook(self._after_step)

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        bad = _any_nonfinite(grads)
        if _sharded(grads):  # a NaN in one process's shard must skip the update everywhere
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        self._skipped_now = bad if self._skipped_now is None else self._skipped_now + bad
        if self._skips_on_device(optimizer):
            optimizer.found_inf = bad  # the fused kernel skips the whole update on the device
        elif bad.item():  # the one host read of the update, for optimizers without found_inf
            for p in params:
                p.grad = None  # torch's optimizers leave parameters without a gradient alone

    @staticmethod
    def _after_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        optimizer.__dict__.pop("found_inf", None)

    def _skips_on_device(self, optimizer: torch.optim.Optimizer) -> bool:
        """Whether `optimizer` honours ``found_inf`` exactly (state included)."""
        if optimizer in self._fused_ready:
            return True
        if not getattr(optimizer, "_step_supports_amp_scaling", False):
            return False  # not fused
        if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
            ready = True  # the fused kernel skips; the step count is taken back
        elif isinstance(optimizer, torch.optim.SGD):
            # Fused SGD allocates new momentum buffers uninitialised and fills them in the
            # kernel: a skipped first update would leave garbage. That one goes the host way.
            ready = all(
                group["momentum"] == 0
                or all(
                    p.grad is None or "momentum_buffer" in optimizer.state.get(p, {})
                    for p in group["params"]
                )
                for group in optimizer.param_groups
            )
        else:
            ready = False
        if ready:
            self._fused_ready.add(optimizer)
        return ready

    def _take_skipped(self) -> int:
        count, self._skipped_now = self._skipped_now, None
        return 0 if count is None else int(count.item())


def _any_nonfinite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A 0-dim float tensor on the first tensor's device: 1.0 if any value is NaN/inf.

    The inf-norm (max |x|) keeps NaN and inf and cannot overflow, so it is exact.
    """
    tensors = [t.coalesce().values() if t.is_sparse else t.detach() for t in tensors]
    tensors = [t.to_local() if hasattr(t, "to_local") else t for t in tensors]  # DTensor shards
    device = tensors[0].device
    tensors = [t for t in tensors if t.numel()]  # an empty tensor has no max
    if not tensors:
        return torch.zeros((), device=device)
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for t in tensors:
        by_device.setdefault(t.device, []).append(t)
    norms = [
        n.float().to(device) for ts in by_device.values() for n in torch._foreach_norm(ts, math.inf)
    ]
    return (~torch.isfinite(torch.stack(norms))).any().float()


def _sharded(tensors: list[torch.Tensor]) -> bool:
    """Whether `tensors` hold DTensor shards in a multi-process group."""
    return (
        any(hasattr(t, "to_local") for t in tensors)
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def _torch_optimizers(optim_wrapper: Any) -> list[torch.optim.Optimizer]:
    # Accelerate's AcceleratedOptimizer keeps torch's optimizer as .optimizer
    return [getattr(w.optimizer, "optimizer", w.optimizer) for w in members(optim_wrapper)]


def _any_process(runner: Any, flag: bool) -> bool:
    """`flag` agreed across processes (any one of them); at a check, not per iteration."""
    acc = getattr(runner, "accelerator", None)
    if acc is None or acc.num_processes == 1:
        return flag
    total = acc.reduce(torch.full((1,), float(flag), device=acc.device), "sum")
    return bool(total.item() > 0)


def _latest(runner: Any) -> str:
    work_dir = getattr(runner, "work_dir", None)
    pointer = Path(work_dir) / LAST if work_dir is not None else None
    if pointer is None or not pointer.is_file():
        return ""
    return f" (the latest checkpoint stays {pointer.read_text(encoding='utf-8').strip()})"

"""`CheckpointHook`: periodic, last and best checkpoints, with retention, MMEngine-style.

Periodic checkpoints are ``work_dir/epoch_<n>/`` (``n`` epochs done) or
``work_dir/iter_<n>/`` (``n`` iterations done); each is resumable and becomes the
``last_checkpoint``. A best checkpoint per metric (``best_accuracy_top1/``) holds the
weights of the best validation so far and is replaced when beaten; the score lives in
``TrainState.best_scores``. See `engine.checkpoint.save` for what a folder holds.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from collections.abc import Callable
from functools import partial
from typing import Any

from engine.checkpoint.async_writer import AsyncWriter
from engine.checkpoint.export import export_weights
from engine.checkpoint.find import read_engine_state
from engine.checkpoint.io import STATE, CheckpointError
from engine.checkpoint.save import at_window_end, check_supported, save_checkpoint, work_dir_of
from engine.hooks.best_rule import infer_rule
from engine.hooks.checkpoint_hook_args import check_int, file_access, metrics_and_rules
from engine.hooks.hook import Hook

logger = logging.getLogger("engine")

_RULES = {"greater": lambda a, b: a > b, "less": lambda a, b: a < b}


def best_name(key: str) -> str:
    """The folder of the best checkpoint for metric `key`: ``best_accuracy_top1``."""
    return "best_" + (re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_") or "metric")


class CheckpointHook(Hook):
    """Save checkpoints periodically, at the end, and for the best validation score.

    Args:
        interval: save every `interval` epochs (``by_epoch``) or iterations; ``<= 0``: never.
        by_epoch: count epochs (saved after the epoch) or iterations.
        max_keep_ckpts: keep only the newest this many periodic checkpoints (best ones are
            apart); ``< 1`` keeps all. The list survives resume (it is hook state).
        save_last: also save at the end of training, whatever the interval.
        save_best: a metric name (``'accuracy/top1'``), a list of them, or ``'auto'`` (the
            first metric validation returns): keep ``best_<metric>/``, replaced when beaten.
        rule: ``'greater'`` or ``'less'`` (one, or one per `save_best` metric); None
            infers it from the name with `engine.hooks.best_rule` (acc, top, mAP, mIoU,
            PSNR... greater; loss, err, error, FID... less), the rule EarlyStoppingHook uses.
        greater_keys / less_keys: replace the name lists that rule inference uses (MMEngine's).
        save_begin: the first epoch/iteration count at which periodic saving may happen;
            saves fall on ``save_begin + k * interval``.
        save_optimizer: False writes periodic checkpoints without the optimizer and RNG
            states: weights only, not resumable (MMEngine's meaning).
        save_param_scheduler: accepted; schedules are functions of the saved counts here,
            so there is no scheduler state to leave out.
        filename_tmpl: the folder name of periodic checkpoints, e.g. ``'ep{}'`` (MMEngine's
            ``'epoch_{}.pth'`` works: the suffix is dropped, checkpoints are folders).
        published_keys: after training, export the last checkpoint's weights to
            ``<work_dir>/<name>-published.safetensors`` (`engine.checkpoint.export_weights`);
            only the model weights are published, whatever keys are named.
        out_dir, file_client_args, backend_args: accepted for MMEngine configs; checkpoints
            are written under ``work_dir`` (a different ``out_dir`` is said once).
        async_save: write checkpoints in a background thread: training waits only while
            the state is copied to CPU (`engine.checkpoint.async_writer`); saves stay atomic,
            one is in flight at a time, retention waits until it is published, and a failed
            write raises at the next save or at the end of training. Holds one checkpoint's
            worth of host memory for the copy while training. Not for sharded models.

    A save that falls inside a gradient-accumulation window waits for the window's end
    (the open window's gradients are not saved), so every checkpoint resumes exactly.

    Example:
        >>> Runner(..., default_hooks=dict(checkpoint=CheckpointHook(
        ...     interval=1, max_keep_ckpts=3, save_best='accuracy/top1')))
    """

    priority = "VERY_LOW"  # after the other hooks have updated what gets saved

    def __init__(
        self,
        interval: int = -1,
        by_epoch: bool = True,
        max_keep_ckpts: int = -1,
        save_last: bool = True,
        save_best: str | list[str] | None = None,
        rule: str | list[str | None] | None = None,
        save_begin: int = 0,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        out_dir: str | None = None,
        greater_keys: str | list[str] | None = None,
        less_keys: str | list[str] | None = None,
        filename_tmpl: str | None = None,
        published_keys: str | list[str] | None = None,
        file_client_args: dict | None = None,
        backend_args: dict | None = None,
        async_save: bool = False,
    ) -> None:
        check_int("interval", interval)
        check_int("max_keep_ckpts", max_keep_ckpts)
        check_int("save_begin", save_begin, low=0)
        if not isinstance(async_save, bool):
            raise TypeError(f"CheckpointHook async_save must be True or False, got {async_save!r}")
        keys, rules = metrics_and_rules(save_best, rule)
        # MMEngine's names for where files go (local disk here; ported code reads them).
        self.file_client, self.file_backend = file_access(file_client_args, backend_args)
        self.interval, self.by_epoch, self.save_begin = interval, bool(by_epoch), save_begin
        self.max_keep_ckpts, self.save_last = max_keep_ckpts, bool(save_last)
        self.save_best = list(keys)
        self.greater_keys = (greater_keys,) if isinstance(greater_keys, str) else greater_keys
        self.less_keys = (less_keys,) if isinstance(less_keys, str) else less_keys
        self.rules = [r or (None if k == "auto" else self._infer(k)) for k, r in zip(keys, rules)]
        self.save_optimizer, self.save_param_scheduler = bool(save_optimizer), save_param_scheduler
        self.out_dir, self.published_keys = out_dir, published_keys
        self._out_dir_given = out_dir  # out_dir is set to work_dir per run when not given
        if filename_tmpl is not None and "{}" not in filename_tmpl:
            raise ValueError(f"CheckpointHook filename_tmpl needs a '{{}}', got {filename_tmpl!r}")
        self.filename_tmpl = filename_tmpl
        self.kept: list[str] = []  # periodic checkpoints on disk, oldest first
        self.last_saved_iter = -1
        self._pending: str | None = None  # a name template waiting for the window's end
        self._training = False
        self._writer = AsyncWriter() if async_save else None  # None: saves write at once
        self._on_publish: list[Callable[[], None]] = []  # what waits for the save in flight

    # -- state that survives resume -------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "kept": list(self.kept),
            "last_saved_iter": self.last_saved_iter,
            "pending": self._pending,
            "save_best": list(self.save_best),
            "rules": list(self.rules),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kept = list(state["kept"])
        self.last_saved_iter = int(state["last_saved_iter"])
        self._pending = state.get("pending")
        if self.save_best == ["auto"] and state.get("save_best", ["auto"]) != ["auto"]:
            self.save_best, self.rules = list(state["save_best"]), list(state["rules"])

    # -- events ---------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        work_dir_of(runner)  # clear errors now rather than at the first save
        check_supported(runner.accelerator)
        if self._writer is not None:
            self._writer.check(runner._raw_model)
        self._on_publish = []
        self._training = True
        if self.by_epoch and runner.state.max_epochs is None and self.interval > 0:
            logger.warning(
                "CheckpointHook(by_epoch=True) in an iteration-based run saves only at the "
                "end; pass by_epoch=False and an interval in iterations for periodic saves"
            )
        given = self._out_dir_given
        if given is not None and str(given) != str(runner.work_dir):
            logger.info(
                "CheckpointHook out_dir=%r: checkpoints are written under work_dir %s",
                given,
                work_dir_of(runner),
            )
        else:
            self.out_dir = runner.work_dir  # MMEngine's attribute: where checkpoints go
        hub = getattr(runner, "message_hub", None)
        if self.save_best and hub is not None:  # MMEngine's best paths, kept in the hub
            if len(self.save_best) == 1:
                self.best_ckpt_path = hub.get_info("best_ckpt")
            else:
                self.best_ckpt_path_dict = {
                    key: hub.get_info(f"best_ckpt_{key}") for key in self.save_best
                }
        if runner.state.iter > 0:  # resumed: a best saved after the resumed checkpoint counts
            self._adopt_best_scores_on_disk(runner)

    def after_train(self, runner) -> None:
        self._training = False
        state = runner.state
        if self.by_epoch and state.max_epochs is None and self.save_last:
            self.save(runner, self._template("iter").format(state.iter))
        self._finish_saving(runner)  # the last checkpoint is published before training ends
        if self._writer is not None:
            self._writer.close()
        if self.published_keys is not None and self.kept and runner.accelerator.is_main_process:
            last = work_dir_of(runner) / self.kept[-1]
            out = export_weights(
                last, work_dir_of(runner) / f"{self.kept[-1]}-published.safetensors"
            )
            logger.info("Published the weights of %s to %s", last, out)

    def after_run(self, runner) -> None:
        self._finish_saving(runner)  # (saves are waited for at after_train already)

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self._pending is not None and at_window_end(runner):
            name, self._pending = self._pending.format(runner.state.iter), None
            self.save(runner, name)
        if self.by_epoch:
            return
        done = runner.iter + 1  # runner.iter: the iteration that just ran (MMEngine's view)
        if self._due(done) or (self.save_last and done == runner.state.max_iters):
            self._save_at_window_end(runner, self._template("iter"), done)

    def after_train_epoch(self, runner) -> None:
        state = runner.state
        if not self.by_epoch or state.max_epochs is None:
            return
        done = state.epoch + 1
        if self._due(done) or (self.save_last and done == state.max_epochs):
            self._save_at_window_end(runner, self._template("epoch").format(done))

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        if not self.save_best:
            return
        if not metrics:
            _logger(runner).warning(
                "CheckpointHook: validation returned no metrics; no best checkpoint this time"
            )
            return
        if not self._training:
            return
        if self.save_best == ["auto"]:
            self.save_best = [next(iter(metrics))]
            self.rules = [self.rules[0] or self._infer(self.save_best[0])]
        for key, rule in zip(self.save_best, self.rules):
            if key not in metrics:
                raise ValueError(
                    f"CheckpointHook save_best={key!r} is not a validation metric; got {sorted(metrics)}"
                )
            score = float(metrics[key])
            best = runner.state.best_scores.get(key)
            if not math.isfinite(score) or (best is not None and not _RULES[rule](score, best)):
                continue
            runner.state.best_scores[key] = score
            self._finish_saving(runner)
            folder = save_checkpoint(
                runner, best_name(key), update_last=False, resumable=False, writer=self._writer
            )
            logger.info("Best %s so far: %.4f; saved %s", key, score, folder)
            self._when_published(partial(self._publish_best, runner, key, score, str(folder)))

    # -- helpers --------------------------------------------------------------------------
    @property
    def key_indicators(self) -> list[str]:
        """MMEngine's name for the `save_best` metrics."""
        return self.save_best

    def _publish_best(self, runner, key: str, score: float, folder: str) -> None:
        """The new best in the message hub under MMEngine's keys (``best_score``/``best_ckpt``,
        or ``best_score_<key>``/``best_ckpt_<key>`` for several metrics), and on the hook."""
        hub = getattr(runner, "message_hub", None)
        if len(self.save_best) == 1:
            self.best_ckpt_path = folder
            names = ("best_score", "best_ckpt")
        else:
            if getattr(self, "best_ckpt_path_dict", None) is None:
                self.best_ckpt_path_dict = {}
            self.best_ckpt_path_dict[key] = folder
            names = (f"best_score_{key}", f"best_ckpt_{key}")
        if hub is not None:
            hub.update_info(names[0], score)
            hub.update_info(names[1], folder)

    def _template(self, unit: str) -> str:
        """The periodic checkpoint's folder name template, ``epoch_{}`` or ``iter_{}``."""
        if self.filename_tmpl is None:
            return f"{unit}_{{}}"
        return self.filename_tmpl.removesuffix(".pth")

    def _infer(self, key: str) -> str:
        return infer_rule(key, self.greater_keys, self.less_keys)

    def _due(self, done: int) -> bool:
        return (
            self.interval > 0
            and done >= self.save_begin
            and (done - self.save_begin) % self.interval == 0
        )

    def _save_at_window_end(self, runner, template: str, done: int | None = None) -> None:
        """Save now (named after `done`, default the iterations done) or at the window's end."""
        if at_window_end(runner):
            self.save(runner, template.format(runner.state.iter if done is None else done))
        else:
            self._pending = template

    def save(self, runner, name: str) -> None:
        """Save `name` now and apply retention (callers make sure a window has ended)."""
        state = runner.state
        if state.iter == self.last_saved_iter:
            return  # this point is saved (a run resumed at an epoch's end redoes the epoch end)
        self._finish_saving(runner)  # one save in flight: the previous one is published first
        self.last_saved_iter = state.iter
        if name in self.kept:
            self.kept.remove(name)
        self.kept.append(name)  # before saving: the checkpoint's own hook state lists it
        logger.info("Saving checkpoint %s (%d iterations done)", name, state.iter)
        folder = save_checkpoint(
            runner,
            name,
            update_last=self.save_optimizer,
            resumable=self.save_optimizer,
            writer=self._writer,
        )
        self._when_published(partial(self._published, runner, str(folder)))

    def _when_published(self, action: Callable[[], None]) -> None:
        """Run `action` once the save just started is published: at once when saving
        synchronously, else when the background save is waited for."""
        if self._writer is None:
            action()
        else:
            self._on_publish.append(action)

    def _finish_saving(self, runner) -> None:
        """Wait for the background save in flight, if any (its error is raised here, on
        every process), then do what waited for it to be published."""
        if self._writer is None:
            return
        actions, self._on_publish = self._on_publish, []
        if self._writer.wait(runner.accelerator) is not None:
            for action in actions:
                action()

    def _published(self, runner, folder: str) -> None:
        hub = getattr(runner, "message_hub", None)
        if hub is not None:  # MMEngine's key for the newest checkpoint (a folder here)
            hub.update_info("last_ckpt", folder)
        self._prune(runner)

    def _prune(self, runner) -> None:
        # Older ones go only now that the new one is complete; a crash in between leaves
        # them listed in the new checkpoint's hook state, so the next save removes them.
        while 0 < self.max_keep_ckpts < len(self.kept):
            old = work_dir_of(runner) / self.kept.pop(0)
            if runner.accelerator.is_main_process:
                shutil.rmtree(old, ignore_errors=True)

    def _adopt_best_scores_on_disk(self, runner) -> None:
        for key, rule in zip(self.save_best, self.rules):
            folder = work_dir_of(runner) / best_name(key)
            if key == "auto" or not (folder / STATE).is_file():
                continue
            try:
                saved = read_engine_state(folder)["train_state"]["best_scores"].get(key)
            except (CheckpointError, KeyError, TypeError) as err:
                logger.warning("Ignoring the best checkpoint %s: %s", folder, err)
                continue
            best = runner.state.best_scores.get(key)
            if saved is not None and (best is None or _RULES[rule](saved, best)):
                runner.state.best_scores[key] = saved


def _logger(runner) -> Any:
    """The run's logger (MMEngine's ``runner.logger``, which feeds engine's), else engine's."""
    found = getattr(runner, "logger", None)
    return found if found is not None else logger

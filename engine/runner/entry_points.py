"""`Runner.train()`, `val()` and `test()`: check what is needed, load, run, finish.

A base of `Runner` (as `RunnerAttributes` is): the Runner builds the run's objects in
``__init__``; these entry points run them. ``train()`` runs ``runner.train_loop.run()``,
engine's loop functions (`engine.runner.loops`) unless ``train_cfg`` named a loop that
ported code registered (`engine.runner.custom_loops`).
"""

from __future__ import annotations

import logging

from engine.checkpoint.async_writer import finish_on_exit
from engine.checkpoint.lock import hold_work_dir
from engine.hooks.signal_hook import handling_signals
from engine.plot import plot_curves, plotting_available
from engine.runner.accelerate_setup import check_has_batches
from engine.runner.model_init import init_model_weights
from engine.runner.resume import load_checkpoint, load_eval_weights
from engine.runner.run_folder import discarding_unused_run_folder
from engine.runner.runner_options import MissingComponentError
from engine.runner.summary import summary_lines
from engine.runner.trackers import flat_hparams

logger = logging.getLogger("engine")


class RunnerEntryPoints:
    """``train()``, ``val()``, ``test()`` of `Runner` (mixed into it)."""

    @discarding_unused_run_folder
    def train(self) -> dict:
        """Train to the configured limit; returns the last validation metrics (or {})."""
        needed = ("train_dataloader", "train_cfg", "optim_wrapper")
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            them = "it" if len(missing) == 1 else "them"
            raise MissingComponentError(
                f"train() needs {', '.join(missing)}; pass {them} to Runner(...) "
                "(they should not be None)"
            )
        if (self.val_dataloader is None) != (self.val_evaluator is None):
            given, lacking = (
                ("val_dataloader", "val_evaluator")
                if self.val_evaluator is None
                else ("val_evaluator", "val_dataloader")
            )
            raise ValueError(
                f"{given} is set but {lacking} is None, so training could never validate; "
                "pass both (e.g. val_evaluator=Accuracy()) or neither"
            )
        check_has_batches(self.train_dataloader)
        if self._log_with is not None and not self.accelerator.trackers:
            # Trackers (TensorBoard, W&B, ...) write under work_dir, one run per train().
            name = self.work_dir.name if self.work_dir is not None else "engine"
            source = self.run_config if self.run_config is not None else self.train_cfg
            self.accelerator.init_trackers(name, config=flat_hparams(source))
        self.hooks.call("before_run", self)
        # SIGTERM/SIGINT stop training at the next window end, with a checkpoint
        # (engine.signals); the previous handlers come back however training ends. One run
        # at a time trains in work_dir (engine.checkpoint.lock). A background save still in
        # flight when training raises is waited for (engine.checkpoint.async_writer).
        with (
            hold_work_dir(self.accelerator, self.work_dir),
            handling_signals(self.hooks),
            finish_on_exit(),
        ):
            if self._loaded != "all":
                init_model_weights(self._raw_model, self.accelerator)  # then loads win
                self._load_checkpoint()
            if self.accelerator.is_main_process:
                for line in summary_lines(self, self.resumed_from):
                    logger.info(line)
            # engine's loop functions (`engine.runner.loops`), or a ported loop's own run()
            self.train_loop.run()
        self.hooks.call("after_run", self)
        self._plot_curves()
        for tracker in self.accelerator.trackers:
            # Not accelerator.end_training(): that also destroys the process group, and
            # val()/test() may follow. Scripts end with end_training() (see recipes/).
            tracker.finish()
        return self.last_metrics

    @discarding_unused_run_folder
    def val(self) -> dict:
        """Evaluate on ``val_dataloader`` with ``val_evaluator``; returns the metrics."""
        if self.val_dataloader is None or self.val_evaluator is None:
            raise MissingComponentError(
                "val() needs val_dataloader and val_evaluator, which should not be None"
            )
        self._load_checkpoint(weights_only=True)
        # ValLoop (val_cfg=dict(fp16=True) autocasts, as MMEngine) or the loop val_cfg names
        self.last_metrics = self.val_loop.run()
        return self.last_metrics

    @discarding_unused_run_folder
    def test(self) -> dict:
        """Evaluate on ``test_dataloader`` with ``test_evaluator``; returns the metrics."""
        if self.test_dataloader is None or self.test_evaluator is None:
            raise MissingComponentError(
                "test() needs test_dataloader and test_evaluator, which should not be None"
            )
        self._load_checkpoint(weights_only=True)
        return self.test_loop.run()

    def _load_checkpoint(self, weights_only: bool = False) -> None:
        """Load ``load_from``/``resume`` before whatever runs first: all of it for training,
        the weights alone for val()/test(). Nothing is reloaded after that, so evaluating
        after train() scores the trained weights."""
        if self._loaded == "all" or (weights_only and self._loaded == "weights"):
            return
        if self.load_from or self.resume_from:
            if weights_only:
                load_eval_weights(self, self.resume_from, self.load_from)
            else:
                self.resumed_from = load_checkpoint(self, self.resume_from, self.load_from)
        self._loaded = "weights" if weights_only else "all"

    def _plot_curves(self) -> None:
        """curves.png in the run folder, when matplotlib is installed (the [plot] extra)."""
        folder = self.log_dir
        if folder is None or not self.accelerator.is_main_process or not plotting_available():
            return
        if (folder / "scalars.jsonl").is_file():
            try:
                logger.info("Training curves: %s", plot_curves(folder))
            except (ValueError, OSError) as err:  # a picture must not fail a finished run
                logger.warning("Could not draw the training curves: %s", err)

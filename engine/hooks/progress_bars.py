"""`ProgressBars`: the tqdm bars `LoggerHook` draws for training and for evaluation.

On the main process only; ``tqdm.auto`` draws widgets in a notebook. Whether to draw is
decided once (a terminal or a notebook, unless the user said), not once per iteration.
"""

from __future__ import annotations

import sys
from typing import Any

from engine.checkpoint.data_position import loader_length


class ProgressBars:
    """A training bar (per epoch, or for the whole iteration-based run) and an evaluation bar.

    Args:
        enabled: True/False to force the bars on or off; None: on in a terminal or notebook.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = enabled
        self.train: Any = None
        self.eval: Any = None
        self._show: bool | None = None

    def _wanted(self, runner) -> bool:
        if self._show is None:
            self._show = (
                bool(self.enabled)
                if self.enabled is not None
                else sys.stdout.isatty() or in_notebook()
            )
        accelerator = getattr(runner, "accelerator", None)
        return self._show and (accelerator is None or accelerator.is_main_process)

    def train_step(self, runner, batch_idx: int) -> None:
        """Advance the training bar by one iteration, opening it first if needed."""
        if self.train is None:
            if not self._wanted(runner):
                return
            from tqdm.auto import tqdm

            state = runner.state
            if state.max_epochs is not None:
                total = loader_length(getattr(runner, "train_dataloader", None))
                desc, initial = f"Epoch {state.epoch + 1}", batch_idx
            else:
                total, desc, initial = state.max_iters, "Iter", state.iter - 1
            self.train = tqdm(total=total, initial=initial, desc=desc, file=sys.stdout, leave=False)
        self.train.update(1)  # a host counter; tqdm redraws at most ~10 times a second

    def eval_step(self, runner, mode: str) -> None:
        """Advance the ``'val'``/``'test'`` bar by one batch, opening it first if needed."""
        if self.eval is None:
            if not self._wanted(runner):
                return
            from tqdm.auto import tqdm

            total = loader_length(getattr(runner, f"{mode}_dataloader", None))
            self.eval = tqdm(total=total, desc=mode, file=sys.stdout, leave=False)
        self.eval.update(1)

    def close_train(self) -> None:
        if self.train is not None:
            self.train.close()
            self.train = None

    def close_eval(self) -> None:
        if self.eval is not None:
            self.eval.close()
            self.eval = None


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where tqdm.auto draws widgets)."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    ip = get() if callable(get) else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"

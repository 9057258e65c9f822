"""`PrepareTTAHook`: MMEngine's test-time-augmentation switch, accepted and said not to apply.

MMEngine wraps the model in a ``BaseTTAModel`` built from ``tta_cfg`` before testing. engine
has no TTA model wrapper, so this hook tests the model as it is and says so once, at the
start of testing, rather than failing a config that names it.
"""

from __future__ import annotations

import logging

from engine.hooks.hook import Hook

logger = logging.getLogger("engine")


class PrepareTTAHook(Hook):
    """Accepts ``tta_cfg`` (recorded); ``before_test`` logs once that no TTA is applied."""

    def __init__(self, tta_cfg: dict | None = None) -> None:
        self.tta_cfg = tta_cfg
        self._said = False

    def before_test(self, runner) -> None:
        if not self._said:
            logger.warning(
                "PrepareTTAHook: engine has no test-time augmentation wrapper; "
                "testing the model without TTA"
            )
            self._said = True

"""What "better" means for a metric: the one rule `CheckpointHook` and `EarlyStoppingHook` share.

MMEngine's arguments: ``rule`` (``'greater'``/``'less'``) wins; otherwise the name decides,
through ``greater_keys``/``less_keys`` (each replaces its default list, as in MMEngine). A
name equal to a key decides first; otherwise the key found last in the name, starting at a
word boundary (``/``, ``_``, ``-``, ``.``), decides, so that ``top1_err`` is an error (less)
although it contains ``top``, and ``accuracy/top1`` is greater.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

# MMEngine's keys plus common ones whose direction no one disputes. Not 'recall': MMEngine
# asks for rule= there (its tests pin it), and engine keeps ported configs' behaviour.
GREATER_KEYS = ("acc", "top", "ar@", "auc", "precision", "f1", "map", "mdice",
                "miou", "macc", "aacc", "psnr", "ssim", "dice", "iou")  # fmt: skip
LESS_KEYS = ("loss", "err", "error", "mse", "mae", "rmse", "wer", "cer", "perplexity", "fid")
RULES = ("greater", "less")


def _keys(keys: str | Sequence[str] | None, default: Sequence[str]) -> list[str]:
    if keys is None:
        return [k.lower() for k in default]
    keys = [keys] if isinstance(keys, str) else keys
    if not all(isinstance(k, str) for k in keys):
        raise TypeError(f"greater_keys/less_keys must be str or a list of str, got {keys!r}")
    return [k.lower() for k in keys]


def infer_rule(
    metric: str,
    greater_keys: str | Sequence[str] | None = None,
    less_keys: str | Sequence[str] | None = None,
) -> str:
    """``'greater'`` or ``'less'`` for `metric`; a ValueError when the name does not say.

    >>> infer_rule('accuracy/top1'), infer_rule('top1_err'), infer_rule('val/loss')
    ('greater', 'less', 'less')
    """
    name = metric.lower()
    tables = {"greater": _keys(greater_keys, GREATER_KEYS), "less": _keys(less_keys, LESS_KEYS)}
    for rule, keys in tables.items():
        if name in keys:
            return rule
    for boundary in (r"(?:^|(?<=[^a-z0-9]))", ""):  # at a word start, else anywhere
        found = [
            (m.start(), rule)
            for rule, keys in tables.items()
            for key in keys
            for m in re.finditer(boundary + re.escape(key), name)
        ]
        if found:
            return max(found)[1]
    raise ValueError(
        f"cannot tell whether a greater or a smaller {metric!r} is better; pass "
        "rule='greater' or rule='less' (or greater_keys/less_keys)"
    )


def check_rule(rule: str | None, owner: str) -> None:
    if rule is not None and rule not in RULES:
        raise ValueError(f"{owner} rule must be 'greater', 'less' or None, got {rule!r}")


def is_better(rule: str, value: float, best: float | None, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than `min_delta` under `rule` (None: anything
    finite beats it; a NaN never does)."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if rule == "greater" else value < best - min_delta

"""`assert_allclose`: MMEngine's tensor comparison, on ``torch.testing.assert_close``."""

from __future__ import annotations

from typing import Any

import torch


def assert_allclose(
    actual: Any,
    expected: Any,
    rtol: float | None = None,
    atol: float | None = None,
    equal_nan: bool = True,
    msg: str | None = None,
) -> None:
    """Assert that `actual` and `expected` (tensors, arrays or numbers) are close.

    Unlike ``torch.testing.assert_close``, dtypes need not match (MMEngine's tests compare a
    float tensor with Python numbers), and NaNs compare equal by default.
    """
    actual = torch.as_tensor(actual)
    expected = torch.as_tensor(expected).to(actual.dtype)
    torch.testing.assert_close(
        actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan, check_device=False, msg=msg
    )

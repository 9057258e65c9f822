"""Version comparison and package checks with MMEngine's names."""

from __future__ import annotations

import importlib.util
import re


def digit_version(version_str: str, length: int = 4) -> tuple[int, ...]:
    """A version string as a tuple that compares as versions do, pre-releases first.

    ``'1.13.0'`` -> ``(1, 13, 0, 0, 0, 0)``; ``'2.1.0rc1'`` sorts before ``'2.1.0'``.
    """
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)(?:(a|b|rc)(\d*))?(?:\.?(post|dev)(\d*))?", version_str)
    if match is None:
        raise ValueError(f"{version_str!r} is not a version string such as '1.13.0'")
    release = [int(part) for part in match.group(1).split(".")][:length]
    release += [0] * (length - len(release))
    pre, pre_n, post, post_n = match.groups()[1:]
    if pre is not None:  # a pre-release sorts before the release it leads to
        release += [{"a": -3, "b": -2, "rc": -1}[pre], int(pre_n or 0)]
    elif post == "dev":
        release += [-4, int(post_n or 0)]
    elif post == "post":
        release += [1, int(post_n or 0)]
    else:
        release += [0, 0]
    return tuple(release)


def is_installed(package: str) -> bool:
    """Whether `package` can be imported."""
    return importlib.util.find_spec(package) is not None

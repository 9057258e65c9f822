"""One-line messages for failed writes: the path, the free space there, and what to do.

A full disk or a read-only folder surfaces from torch, safetensors and Python as many
different errors (``RuntimeError: [enforce fail at inline_container.cc...]``,
``SafetensorError ... (os error 28)``, a bare ``OSError``). `write_failure` turns each into
the line a user can act on; `is_disk_error` tells them apart from real bugs.

Example:
    >>> write_failure("writing scalars.jsonl", Path("runs/a/scalars.jsonl"), OSError(28, "No space"))
    "writing scalars.jsonl failed at runs/a/scalars.jsonl: no space left on the device (12 MB free) ..."
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

_ADVICE = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_FIX = {
    errno.ENOSPC: "free space or choose another work_dir",
    errno.EDQUOT: "free space or choose another work_dir",
    errno.EROFS: "choose a writable work_dir",
    errno.EACCES: "make the folder writable or choose another work_dir",
    errno.EPERM: "make the folder writable or choose another work_dir",
}
# torch and safetensors put the OS error's text or number into their own messages.
_IN_TEXT = re.compile(
    r"os error (\d+)|errno[ =:]*(\d+)|No space left|Disk quota|Read-only file system|"
    r"Permission denied|file write failed|unexpected pos",
    re.IGNORECASE,
)


def errno_of(err: BaseException) -> int | None:
    """The OS error number behind `err` (or its cause), None if there is none to be found."""
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, OSError) and err.errno is not None:
            return err.errno
        match = _IN_TEXT.search(str(err))
        if match:
            number = match.group(1) or match.group(2)
            if number:
                return int(number)
            text = match.group(0).lower()
            if "read-only" in text:
                return errno.EROFS
            if "permission" in text:
                return errno.EACCES
            if "quota" in text:
                return errno.EDQUOT
            return errno.ENOSPC  # "file write failed": torch's zip writer on a full disk
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def is_disk_error(err: BaseException) -> bool:
    """True when `err` is (or wraps) a failed write to the file system."""
    return isinstance(err, OSError) or errno_of(err) is not None


def free_space(path: Path) -> str:
    """Free space on the file system of `path` (or its nearest existing parent), e.g. '12 MB'."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "unknown"
    for unit in ("B", "kB", "MB", "GB"):
        if free < 1000 or unit == "GB":
            return f"{free:.0f} {unit}" if unit == "B" else f"{free:.1f} {unit}"
        free /= 1000
    return "unknown"


def write_failure(what: str, path: Path, err: BaseException) -> str:
    """One line: what failed where, why, the free space there, and what to do."""
    number = errno_of(err)
    reason = _ADVICE.get(number) or (
        getattr(err, "strerror", None) or str(err).splitlines()[0]
        if str(err)
        else type(err).__name__
    )
    fix = _FIX.get(number, "check that the folder is writable and has space")
    return f"{what} failed at {path}: {reason} ({free_space(path)} free there); {fix}"


def make_work_dir(work_dir: Path) -> None:
    """Create `work_dir` and check that a file can be written there: a read-only or full
    folder is one line now, not a raw ``OSError`` from the first write of the run."""
    probe = Path(work_dir) / f".engine_write_test_{os.getpid()}"
    try:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"ok")
        probe.unlink()
    except OSError as err:
        raise type(err)(write_failure("using work_dir", Path(work_dir), err)) from None


def write_file(path: Path, data: str | bytes, what: str) -> None:
    """Write `data` to `path`; a failure is one line (`write_failure`) of the same OSError type.

    Example:
        >>> write_file(Path("runs/a/config.json"), "{}", "writing the config")
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    except OSError as err:
        raise type(err)(write_failure(what, path, err)) from None

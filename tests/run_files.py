"""Where a run's own files are: the run folder ``work_dir/<timestamp>/`` (see engine.runner.run_folder)."""

import re
from pathlib import Path


def run_folders(work_dir) -> list[Path]:
    """The run folders in `work_dir`, oldest first (a run's files: run.log, scalars.jsonl...)."""
    return sorted(p for p in Path(work_dir).iterdir() if p.is_dir() and (p / "run.log").exists())


def run_file(work_dir, name: str) -> Path:
    """`name` (e.g. 'scalars.jsonl') in the newest run folder of `work_dir`."""
    folders = run_folders(work_dir)
    assert folders, (
        f"no run folder in {work_dir}: {sorted(p.name for p in Path(work_dir).iterdir())}"
    )
    return folders[-1] / name


def is_run_folder(name: str) -> bool:
    """A run folder's name: the run's start time, YYYYmmdd_HHMMSS (then _2, _3... if taken)."""
    return re.fullmatch(r"\d{8}_\d{6}(_\d+)?", name) is not None


def without_run_folders(names) -> list[str]:
    """`names` (of entries in a work_dir), the run folders left out, sorted."""
    return sorted(n for n in names if not is_run_folder(n))

"""Run MMEngine's own unit tests against engine, with only ``mmengine`` renamed to ``engine``.

MMEngine's tests are not part of this repository: point the script at a checkout of
MMEngine (``git clone https://github.com/open-mmlab/mmengine``). It copies the chosen test
folders to a temporary directory, replaces ``mmengine`` by ``engine`` in their imports and
nothing else, runs pytest there and prints passed/failed/errors per folder.

    python bench/mmengine_tests.py /path/to/mmengine test_model test_optim
    python bench/mmengine_tests.py /path/to/mmengine test_hooks -k ema -- -x   # extra pytest args
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

IMPORT = re.compile(r"^(\s*)(from|import)\s+mmengine\b", re.M)


def port(text: str) -> str:
    """``from mmengine.x import y`` -> ``from engine.x import y``; ``import mmengine`` likewise."""
    text = IMPORT.sub(lambda m: f"{m.group(1)}{m.group(2)} engine", text)
    return re.sub(r"\bmmengine\.", "engine.", text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mmengine", type=Path, help="a checkout of MMEngine")
    parser.add_argument("folders", nargs="+", help="folders under its tests/, e.g. test_optim")
    parser.add_argument("-k", default=None, help="pytest -k expression")
    parser.add_argument("--show", action="store_true", help="list every failing test")
    args, extra = parser.parse_known_args()
    # pytest's own order over the whole tests/ tree: a folder's tearDown can clear a registry
    # that a later folder filled at import (test_checkpoint_hook clears METRICS).
    args.folders = sorted(set(args.folders))
    tests = args.mmengine / "tests"
    if not tests.is_dir():
        parser.error(f"{args.mmengine} has no tests/ folder; give a checkout of MMEngine")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tests"
        root.mkdir()
        for folder in args.folders:
            shutil.copytree(tests / folder, root / folder)
        for path in root.rglob("*.py"):
            path.write_text(port(path.read_text()))
        report = Path(tmp) / "report.xml"
        # A test file that cannot be imported counts as one error; the other files still run.
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no",
               "--continue-on-collection-errors",
               f"--junitxml={report}", "--rootdir", tmp, *(["-k", args.k] if args.k else []),
               *[str(root / f) for f in args.folders], *[e for e in extra if e != "--"]]  # fmt: skip
        subprocess.run(cmd, cwd=tmp, capture_output=not args.show)
        if not report.exists():
            print("pytest wrote no report")
            return 1
        counts: dict[str, Counter] = {}
        failing = []
        for case in ET.parse(report).iter("testcase"):
            folder = (
                case.get("classname", "").split(".")[1] if "." in case.get("classname", "") else "?"
            )
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[
                        child.tag
                    ]
            counts.setdefault(folder, Counter())[outcome] += 1
            if outcome in ("failed", "error"):
                failing.append(f"{case.get('classname')}::{case.get('name')}")
        total = Counter()
        for folder, c in sorted(counts.items()):
            total.update(c)
            print(
                f"{folder:<20} "
                + "  ".join(f"{k} {c[k]}" for k in ("passed", "failed", "error", "skipped"))
            )
        ran = sum(total.values())
        print(f"{'total':<20} " + "  ".join(f"{k} {total[k]}" for k in ("passed", "failed", "error", "skipped"))
              + f"   ({100 * total['passed'] / max(ran, 1):.0f}% of {ran} passed)")  # fmt: skip
        if args.show:
            print("\n".join(failing))
    return 0


if __name__ == "__main__":
    sys.exit(main())

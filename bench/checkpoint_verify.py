"""How long verifying a checkpoint's manifest takes on a 1 GB checkpoint, next to ``cat``.

Writes a checkpoint folder of about 1 GB (``model.safetensors`` of four float32 tensors and a
small optimizer file) with its manifest, then times, cold (pages evicted with
``posix_fadvise(DONTNEED)``) and warm (in the page cache):

* ``cat model.safetensors > /dev/null`` — what the disk delivers;
* `engine.checkpoint.manifest.verify` — XXH3-128 of every file, as resume does;
* the same with SHA-256, the alternative it was chosen over.

Usage: ``python bench/checkpoint_verify.py [--dir /path/on/the/disk/to/test] [--gb 1]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from xxhash import xxh3_128

from engine.checkpoint.io import save_tensors, torch_save
from engine.checkpoint.manifest import describe, verify, write_manifest


def evict(folder: Path) -> None:
    """Drop `folder`'s files from the page cache, so the next read comes from the disk."""
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir=args.dir))
    folder = root / "iter_1"
    folder.mkdir()
    numel = int(args.gb * 1e9 / 4 / 4)
    g = torch.Generator().manual_seed(0)
    tensors = {f"layer{i}.weight": torch.randn(numel, generator=g) for i in range(4)}
    save_tensors(folder / "model.safetensors", tensors)
    torch_save({"state": {}, "param_groups": []}, folder / "optimizer.pt")
    write_manifest(folder)
    del tensors
    size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    model = folder / "model.safetensors"

    def cat() -> None:
        subprocess.run(f"cat {model} > /dev/null", shell=True, check=True)

    rows = {"cat": [], "verify (xxh3_128, the default)": [], "verify if it were sha256": []}
    for _ in range(args.rounds):
        for label, fn in (
            ("cat", cat),
            ("verify (xxh3_128, the default)", lambda: verify(folder)),
            ("verify if it were sha256", lambda: describe(folder, None, "sha256")),
        ):
            evict(folder)
            cold = timed(fn)
            warm = timed(fn)
            rows[label].append((cold, warm))
    buf = os.urandom(256 << 20)
    single = {}
    for name, new in (
        ("sha256", hashlib.sha256),
        ("blake2b", hashlib.blake2b),
        ("xxh3_128", xxh3_128),
    ):
        h = new()
        single[name] = 256 * 1.048576 / timed(lambda h=h: h.update(buf))
    print(f"checkpoint: {size:.0f} MB in {root}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}")  # fmt: skip
    print("| step | cold s (MB/s) | warm s (MB/s) |\n| --- | ---: | ---: |")
    for label, times in rows.items():
        cold, warm = min(t[0] for t in times), min(t[1] for t in times)
        mb = size if label.startswith("verify") else model.stat().st_size / 1e6
        print(f"| {label} | {cold:.2f} ({mb / cold:.0f}) | {warm:.2f} ({mb / warm:.0f}) |")
    print("in-memory hash, one core: " + ", ".join(f"{k} {v:.0f} MB/s" for k, v in single.items()))
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    root.rmdir()


if __name__ == "__main__":
    main()

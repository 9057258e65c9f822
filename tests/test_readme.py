"""The README as a new user reads it on a fresh clone: its links lead to files, its Python
programs run as written (in a folder beside the recipes, after the `make train` and
`engine export` that the README runs before them), and its fragments parse."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_link_and_cited_path_exists():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [x for x in links if not x.startswith("http")]
    cited = re.findall(r"`((?:recipes|docs|bench|engine|tests)/[\w/.-]+\.\w+)`", README)
    missing = [p for p in local + cited if not (ROOT / p).exists()]
    assert local and cited and not missing, missing
    anchors = re.findall(r"\]\(#([^)]+)\)", README)
    headings = {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", README, flags=re.M)
    }
    assert anchors and not [a for a in anchors if a not in headings], (anchors, headings)


def test_python_blocks_run_as_written(tmp_path):
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("ACCELERATE_")}

    def run(args):
        proc = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    # What `make train` and `engine export` leave behind, shortened to one epoch.
    run([sys.executable, "recipes/train.py", "--max-epochs", "1"])
    run([sys.executable, "-m", "engine", "export", "work_dirs/digits", "digits.safetensors"])
    sections = re.split(r"^## ", README, flags=re.M)
    runnable = ("The migration guide", "Predicting", "Your own data", "In a notebook")
    blocks = [
        block
        for section in sections
        if section.startswith(runnable)
        for block in re.findall(r"```python\n(.*?)```", section, flags=re.S)
    ]
    assert len(blocks) == 4
    for block in re.findall(r"```python\n(.*?)```", README, flags=re.S):
        compile(block, "README.md", "exec")  # the others (fragments) at least parse
    outputs = []
    for i, block in enumerate(blocks):
        path = tmp_path / f"block_{i}.py"
        path.write_text(block)
        outputs.append(run([sys.executable, str(path)]))
    joined = "\n".join(outputs)
    assert "20 160 160" in joined  # run_loop's final state, as the README says
    assert re.search(r"1[4-6] of 16 right", joined), joined
    accuracy = float(re.search(r"'accuracy/top1': ([\d.]+)", joined).group(1))
    assert accuracy > 90.0

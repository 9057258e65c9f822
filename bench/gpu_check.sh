#!/usr/bin/env bash
# One call on a GPU machine: every CUDA test (pytest -m cuda), then sharded save/SIGKILL/resume
# under accelerate launch's FSDP2 and DeepSpeed ZeRO-2/3 (bench/gpu_sharded.py), then
# bench/gpu.py, in under 8 minutes, writing markdown to paste into bench/RESULTS.md.
#
#   bench/gpu_check.sh [OUT.md]          # default OUT: bench/gpu_check.md
#   bench/gpu_check.sh --smoke [OUT.md]  # no GPU: the CUDA tests' CPU cases, gpu_sharded.py
#                                        # --dry-run and gpu.py --smoke
#
# PYTHON picks the interpreter (default: python3). On a machine with no internet whose
# Python lacks a package engine needs (tyro, say), WHEELS=DIR installs it from wheels in DIR
# first (`pip download tyro -d DIR` elsewhere). Exit status: 0 when the tests passed and the
# benchmark ran; the markdown is written either way, with what failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # engine from this checkout, not installed

SMOKE=0
if [[ "${1:-}" == "--smoke" ]]; then SMOKE=1; shift; fi
OUT="${1:-bench/gpu_check.md}"
PY="${PYTHON:-python3}"
TOTAL_S=470  # the whole call's budget: 8 minutes less a margin
START=$(date +%s)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [[ -n "${WHEELS:-}" ]]; then
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" "$WHEELS"/*.whl || exit 2
fi
MISSING=$("$PY" -c "import importlib.util as u; print(*[m for m in ('torch', 'accelerate', 'safetensors', 'tyro', 'tqdm', 'pytest') if u.find_spec(m) is None])")
if [[ -n "$MISSING" ]]; then
    echo "gpu_check.sh: $PY lacks: $MISSING; install them, or carry wheels and pass WHEELS=DIR" >&2
    exit 2
fi
if [[ $SMOKE == 0 ]] && ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check.sh: torch sees no CUDA device; on a machine without one run: bench/gpu_check.sh --smoke" >&2
    exit 2
fi

# 1. The CUDA tests (on a CPU: the same file's CPU cases). At most 3 minutes.
if [[ $SMOKE == 1 ]]; then TESTS=(tests/test_cuda.py); else TESTS=(-m cuda tests); fi
timeout 180 "$PY" -m pytest "${TESTS[@]}" -rfEs -p no:cacheprovider >"$WORK/pytest.txt" 2>&1
TESTS_RC=$?
tail -n 40 "$WORK/pytest.txt"

# 2. Sharded resume under Accelerate's FSDP2 and DeepSpeed (skipped in one line each if
#    DeepSpeed does not import): at most 150 s of runs, less if the tests took long, so
#    that the benchmark keeps 3 minutes.
SHARDED_S=$((TOTAL_S - ($(date +%s) - START) - 180))
SHARDED_S=$((SHARDED_S > 150 ? 150 : SHARDED_S))
if [[ $SMOKE == 1 ]]; then SHARDED=(--dry-run); else SHARDED=(--budget-s "$SHARDED_S"); fi
timeout $((SHARDED_S > 0 ? SHARDED_S + 50 : 50)) "$PY" bench/gpu_sharded.py "${SHARDED[@]}" --out "$WORK/sharded.md" >"$WORK/sharded.txt" 2>&1
SHARDED_RC=$?
tail -n 8 "$WORK/sharded.txt"

# 3. The benchmark, in what is left of the budget (gpu.py's own budget leaves it a margin
#    for start-up, warm-up and compilation).
LEFT=$((TOTAL_S - ($(date +%s) - START)))
if [[ $SMOKE == 1 ]]; then BENCH=(--smoke); else BENCH=(--budget-s $((LEFT - 60))); fi
timeout "$LEFT" "$PY" bench/gpu.py "${BENCH[@]}" --out "$WORK/bench.md" >"$WORK/bench.txt" 2>&1
BENCH_RC=$?
tail -n 5 "$WORK/bench.txt"

# 4. The markdown: the test summary, the sharded runs, then the benchmark's tables.
{
    echo "## bench/gpu_check.sh, $(date -u +%Y-%m-%d) ($(( $(date +%s) - START )) s)"
    echo
    SUMMARY=$(grep -E "[0-9]+ (passed|failed|errors?|skipped|deselected)" "$WORK/pytest.txt" | tail -n 1)
    echo "\`pytest ${TESTS[*]}\` (exit $TESTS_RC): ${SUMMARY:-no summary line}"
    if [[ $TESTS_RC != 0 ]]; then
        echo
        echo '```'
        grep -E "^(FAILED|ERROR)" "$WORK/pytest.txt" | head -n 30
        echo '```'
    fi
    echo
    if [[ -s "$WORK/sharded.md" ]]; then
        cat "$WORK/sharded.md"
    else
        echo "bench/gpu_sharded.py failed (exit $SHARDED_RC):"
        echo '```'
        tail -n 20 "$WORK/sharded.txt"
        echo '```'
    fi
    echo
    if [[ -s "$WORK/bench.md" ]]; then
        cat "$WORK/bench.md"
    else
        echo "bench/gpu.py failed (exit $BENCH_RC):"
        echo '```'
        tail -n 30 "$WORK/bench.txt"
        echo '```'
    fi
} >"$OUT"
echo "gpu_check.sh: wrote $OUT (tests exit $TESTS_RC, sharded exit $SHARDED_RC, bench exit $BENCH_RC)"
[[ $TESTS_RC == 0 && $SHARDED_RC == 0 && $BENCH_RC == 0 ]]

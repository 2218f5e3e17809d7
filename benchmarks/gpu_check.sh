#!/usr/bin/env bash
# The one-shot GPU check (issue 7): run once on a GPU machine, from the repository root.
#
#   bash benchmarks/gpu_check.sh
#
#   a) the machine: nvidia-smi, python / torch / numpy versions, torch's CUDA device name;
#   b) every test marked `device` (any test taking the `device` fixture, in tests/) on cuda (CI runs
#      them on the cpu),
#      warnings as errors as in CI (timeout 240 s); tests that fail are then rerun once with
#      warnings NOT turned into errors (timeout 90 s), which tells a new torch warning from a
#      wrong number;
#   c) benchmarks/gpu.sh cuda (timeout 200 s).
#
# A smoke test of the script itself on a machine without a GPU (cuda tests skip):
#   OUT=/tmp/check PFT_BENCH_SMALL=1 PFT_BENCH_DEVICE=cpu bash benchmarks/gpu_check.sh
#
# Needs no installed pft (PYTHONPATH is the repository root) and no network. Files go under $OUT
# (./ when unset): gpu-tests.log, gpu-tests.xml (junit), gpu-bench.log, gpu-score.csv,
# gpu-normals.csv, gpu-background.csv, gpu-scaling.csv. Every step runs even after a failure;
# the exit status is non-zero if any step failed. Expected: ~1-2 min of tests, ~2.5 min of
# benchmarks. tests/models is left out: its weights' packages are not on the GPU machine.
set -uo pipefail
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-.}"
py="${PYTHON:-python3}"
mkdir -p "$out"
log="$out/gpu-tests.log"
failed=()
t_start=$SECONDS

{
  echo "== gpu_check.sh $(date -u +%FT%TZ) at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi failed"
  "$py" - <<'PY'
import sys, numpy, torch
print("python", sys.version.split()[0], "numpy", numpy.__version__, "torch", torch.__version__,
      "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("torch.cuda.get_device_name:", torch.cuda.get_device_name(0), f"({p.total_memory / 2**30:.0f} GiB,",
          f"capability {p.major}.{p.minor}, {torch.cuda.device_count()} device(s))")
PY
} 2>&1 | tee "$log"
[[ ${PIPESTATUS[0]} == 0 ]] || failed+=(environment)

echo | tee -a "$log"
echo "== tests: PFT_TEST_DEVICES=cuda pytest -m device tests" | tee -a "$log"
t0=$SECONDS
PFT_TEST_DEVICES=cuda timeout 240 "$py" -m pytest -v -m device -p no:cacheprovider \
  --continue-on-collection-errors --ignore=tests/models -rfEs --durations=20 \
  --junitxml="$out/gpu-tests.xml" tests 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
echo "-- tests: exit $rc$( ((rc == 124)) && echo ' (TIMED OUT after 240 s)'), $((SECONDS - t0)) s" | tee -a "$log"
if ((rc != 0)); then
  failed+=(tests)
  mapfile -t again < <(grep -aE '^(FAILED|ERROR) ' "$log" | awk '{print $2}' | sort -u)
  if ((${#again[@]})); then
    echo | tee -a "$log"
    echo "== rerun of the ${#again[@]} failed test(s) with warnings NOT turned into errors" | tee -a "$log"
    PFT_TEST_DEVICES=cuda timeout 90 "$py" -m pytest -q -m device -p no:cacheprovider -W default \
      -rfEs "${again[@]}" 2>&1 | tee -a "$log"
    echo "-- rerun: exit ${PIPESTATUS[0]} (0: every failure above was a warning raised as an error)" | tee -a "$log"
  fi
fi

echo
bench_dev="${PFT_BENCH_DEVICE:-cuda}"
echo "== benchmarks: bash benchmarks/gpu.sh $bench_dev (log and CSVs in $out)"
t0=$SECONDS
PFT_BENCH_DIR="$out" PYTHON="$py" timeout 200 bash benchmarks/gpu.sh "$bench_dev"
rc=$?
msg="-- benchmarks: exit $rc$( ((rc == 124)) && echo ' (TIMED OUT after 200 s)'), $((SECONDS - t0)) s"
echo "$msg" | tee -a "$out/gpu-bench.log"
((rc == 0)) || failed+=(benchmarks)

echo
if ((${#failed[@]})); then
  echo "gpu_check.sh: FAILED: ${failed[*]} ($((SECONDS - t_start)) s)" | tee -a "$log"
  exit 1
fi
echo "gpu_check.sh: all passed ($((SECONDS - t_start)) s)" | tee -a "$log"

#!/usr/bin/env bash
# The GPU subset of the benchmarks, for an H100/H200 (about 2-3 minutes). Every figure is printed
# next to a baseline measured in the same run, with the ratio. Not run by CI.
#
#   bash benchmarks/gpu.sh [device]        (default cuda; from the repository root)
#
# Environment:
#   PFT_BENCH_SMALL=1   tiny sizes: a smoke test of every command (under 2 minutes on a 2-core CPU:
#                       PFT_BENCH_SMALL=1 bash benchmarks/gpu.sh cpu)
#   PFT_BENCH_DIR=DIR   where gpu-bench.log and the CSVs go (default: the current directory)
#   PYTHON=...          the interpreter (default python3)
# pft need not be installed: the repository root goes on PYTHONPATH. Every step runs even when an
# earlier one failed; the exit status is non-zero if any failed.
#
# Steps (full size; estimates for an H200 with a 16-core host, ~2.5 minutes in all):
#   score        200k x 1024 float32: score(device=None) vs score(device=DEV) on the same data, and
#                the largest relative difference between the two reports     ~60-90 s (host run)
#   score-scale  1M x 1024 float32 (issue targets): score of tensors already on DEV (>= 1M tokens/s),
#                and of the same rows from host memory against the host-to-DEV copy of them
#                (<= 2x), both with precision float64 and float32                         ~40-60 s
#   normals      raw normal_() float64 rate on DEV vs the host: the ensemble samplers' limit   ~5 s
#   background   1M x 1024 float32 in 65536-row chunks: pft's fit in float64/float32/TF32 on DEV vs
#                torch.cov(float64) on DEV and vs pft's numpy fit on the host  ~30 s (data made on host)
#   scaling      exact vs weight-by-weight ensembles, ReLU, widths 64..4096, depth 16        ~20 s
#   summary      the exact sampler's normals/s as a fraction of the normal_() limit
# Each step has its own time limit (75, 120, 15, 50, 40, 10 s at full size), so one slow step cannot
# starve the others; a step that runs out prints "TIMED OUT" and counts as failed.
set -uo pipefail
dev="${1:-cuda}"
dir="${PFT_BENCH_DIR:-.}"
py="${PYTHON:-python3}"
mkdir -p "$dir"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ "${PFT_BENCH_SMALL:-0}" != 0 ]]; then
  sizes=small
  score_size=(20000 64)
  scale_size=(20000 64)
  normals=$((1 << 20))
  bg=(--tokens 20000 --dim 64 --repeats 1 --chunk 4096)
  sc=(--widths 16,64 --depth 4 --seconds 0.2 --repeats 1)
  limits=(600 600 600 600 600 600)
else
  sizes=full
  score_size=(200000 1024)
  scale_size=(1000000 1024)
  normals=$((1 << 28))
  bg=(--tokens 1000000 --dim 1024 --repeats 2 --chunk 65536)
  sc=(--widths 64,256,1024,4096 --depth 16 --seconds 1 --repeats 2)
  limits=(75 15 50 40 10 120)  # seconds: score normals background scaling summary score-scale (310 in all)
fi

failed=()
step() {  # step NAME LIMIT COMMAND...: run under a time limit, time it, keep going on failure
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  echo
  echo "== $name"
  timeout "$limit" "$@"
  rc=$?
  echo "-- $name: exit $rc$( ((rc == 124)) && echo " (TIMED OUT after $limit s)"), $((SECONDS - t0)) s"
  ((rc == 0)) || failed+=("$name")
}

score_bench() {  # device first: if the host baseline runs out of time, the device figure is in
  step score "${limits[0]}" "$py" - "$dev" "${score_size[@]}" "$dir/gpu-score.csv" <<'PY'
import csv, math, sys, time
import numpy as np
from pft.residual import score

dev, N, d, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
x = rng.standard_normal((N, d), dtype=np.float32)
xh = x + 0.3 * rng.standard_normal(x.shape, dtype=np.float32)
times, reps = {}, {}
for where in (dev, None):
    t = time.perf_counter()
    reps[where] = score(x, xh, device=where, progress=False)
    if str(where).startswith("cuda"):
        import torch
        torch.cuda.synchronize()
    times[where] = time.perf_counter() - t
    print(f"score {N} x {d}, device={where}: {times[where]:.1f} s, {N / times[where]:.0f} tokens/s", flush=True)
ratio = times[None] / times[dev]
print(f"score speed-up of device={dev} over device=None (host numpy, same run and data): {ratio:.2f}x")
# the two reports must agree: float64 everywhere, only the order of sums differs
a, b = reps[None].to_dict(), reps[dev].to_dict()
worst, where_worst, compared = 0.0, None, 0
for k, v in a.items():
    pairs = zip(v, b[k]) if isinstance(v, list) else [(v, b[k])]
    for u, w in pairs:
        if isinstance(u, float) and isinstance(w, float) and math.isfinite(u):
            compared += 1
            rel = abs(u - w) / max(abs(u), 1e-300)
            if rel > worst or (rel != rel):
                worst, where_worst = rel, k
print(f"largest relative difference between the two reports over {compared} numbers: {worst:.2e} ({where_worst})")
with open(out, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["benchmark", "what", "tokens", "dim", "seconds", "tokens_per_s", "ratio", "note"])
    w.writerow(["score", "device=None (host numpy)", N, d, times[None], N / times[None], 1.0, "baseline"])
    w.writerow(["score", f"device={dev}", N, d, times[dev], N / times[dev], ratio,
                f"ratio = host time / device time; max report rel. diff {worst:.1e} ({where_worst})"])
PY
}

score_scale_bench() {  # the issue's GPU targets: rows already on the device, and from host memory
  step score-scale "${limits[5]}" "$py" - "$dev" "${scale_size[@]}" "$dir/gpu-score-scale.csv" <<'PY'
import csv, sys, time
import torch
from pft.residual import score

dev, N, d, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sync = torch.cuda.synchronize if str(dev).startswith("cuda") else (lambda: None)
g = torch.Generator().manual_seed(0)
x = torch.randn(N, d, generator=g)  # float32 on the host, a residual with sparse heavy tails
feats = torch.nn.functional.normalize(torch.randn(8, d, generator=g), dim=1)
codes = (torch.rand(N, 8, generator=g) < 0.02) * torch.empty(N, 8).exponential_(1 / 3.0, generator=g)
xh = x - (0.3 * torch.randn(N, d, generator=g) + codes @ feats)

def clock(fn):
    sync(); t = time.perf_counter(); r = fn(); sync()
    return time.perf_counter() - t, r

t_copy, (xd, xhd) = clock(lambda: (x.to(dev), xh.to(dev)))
rows = [["score-scale", "host-to-device copy of x and x̂", N, d, t_copy, N / t_copy, 1.0, "baseline for the from-host rows"]]
print(f"copy of {N} x {d} float32 x and x̂ to {dev}: {t_copy:.2f} s")
for prec in ("float64", "float32"):
    t_dev, _ = clock(lambda: score(xd, xhd, device=dev, progress=False, precision=prec))
    t_host, _ = clock(lambda: score(x, xh, device=dev, progress=False, precision=prec))
    print(f"precision={prec}: on the device {t_dev:.2f} s = {N / t_dev:.3e} tokens/s (target >= 1e6); "
          f"from host memory {t_host:.2f} s = {t_host / t_copy:.2f}x the copy (target <= 2x)")
    rows.append(["score-scale", f"score, rows on {dev}, precision={prec}", N, d, t_dev, N / t_dev, t_dev / t_copy,
                 "target >= 1e6 tokens/s"])
    rows.append(["score-scale", f"score from host memory, device={dev}, precision={prec}", N, d, t_host, N / t_host,
                 t_host / t_copy, "ratio = time / copy time; target <= 2"])
with open(out, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["benchmark", "what", "tokens", "dim", "seconds", "tokens_per_s", "ratio", "note"])
    w.writerows(rows)
PY
}

normals_bench() {
  step normals "${limits[1]}" "$py" - "$dev" "$normals" "$dir/gpu-normals.csv" <<'PY'
import csv, sys, time
import torch

dev, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def rate(device, n, reps=5):
    x = torch.empty(n, device=device, dtype=torch.float64)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    x.normal_(); sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); x.normal_(); sync(); best = min(best, time.perf_counter() - t)
    return n / best

r_dev = rate(dev, n)
r_host = rate("cpu", min(n, 1 << 24), reps=3)
print(f"normal_() float64 on {dev}: {r_dev:.3e} normals/s; on the host (torch, {torch.get_num_threads()} threads): "
      f"{r_host:.3e}; ratio {r_dev / r_host:.1f}x")
with open(out, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["benchmark", "what", "normals_per_s", "ratio", "note"])
    w.writerow(["normals", f"normal_ float64 on {dev}", r_dev, r_dev / r_host, "ratio = device / host"])
    w.writerow(["normals", "normal_ float64 on the host", r_host, 1.0, "baseline"])
PY
}

summary() {
  step summary "${limits[4]}" "$py" - "$dir/gpu-normals.csv" "$dir/gpu-scaling.csv" <<'PY'
import csv, sys

limit = float(next(csv.DictReader(open(sys.argv[1])))["normals_per_s"])
print("exact sampler (one input): (depth-1)*width + 1 normals per network, against the normal_() limit")
for r in csv.DictReader(open(sys.argv[2])):
    w, L, e = int(r["width"]), int(r["depth"]), float(r["exact_per_s"])
    per = (L - 1) * w + 1
    print(f"  width {w:>5}: {e:.3e} networks/s = {e * per:.3e} normals/s = {e * per / limit:.1%} of the limit; "
          f"exact/weights {float(r['ratio']):.0f}x")
PY
}

main() {
  echo "pft GPU benchmarks on $dev ($(date -u +%FT%TZ)), sizes: $sizes"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  fi
  "$py" -c "import sys, numpy, torch; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, 'host threads', torch.get_num_threads())"
  score_bench
  normals_bench
  step background "${limits[2]}" "$py" -m benchmarks.bench_background --device "$dev" "${bg[@]}" \
    --csv "$dir/gpu-background.csv"
  step scaling "${limits[3]}" "$py" -m benchmarks.bench_scaling --device "$dev" "${sc[@]}" --csv "$dir/gpu-scaling.csv"
  summary
  score_scale_bench
  echo
  if ((${#failed[@]})); then
    echo "gpu.sh: FAILED steps: ${failed[*]}"
    return 1
  fi
  echo "gpu.sh: all steps passed"
}

main 2>&1 | tee "$dir/gpu-bench.log"
exit "${PIPESTATUS[0]}"

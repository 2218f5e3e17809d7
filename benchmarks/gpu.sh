#!/usr/bin/env bash
# The GPU subset of the benchmarks, for an H100/H200 (about 3 minutes). Run from the repository
# root after installing pft; every figure is printed next to a baseline from the same run.
#   bash benchmarks/gpu.sh [device]        (default cuda)
# Writes gpu-bench.log. Not run by CI.
set -euo pipefail
dev="${1:-cuda}"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python - <<PY
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
# the normal-sampling limit the exact ensemble sampler is compared against
n = 1 << 28
x = torch.empty(n, device="$dev", dtype=torch.float64)
torch.cuda.synchronize()
import time
best = 1e9
for _ in range(5):
    t = time.perf_counter(); x.normal_(); torch.cuda.synchronize(); best = min(best, time.perf_counter() - t)
print(f"normal sampling limit: {n / best:.3e} float64 normals/s")
PY
  # background fit on the device: float64 / float32 / TF32 against torch.cov, with accuracy cost
  python -m benchmarks.bench_background --device "$dev" --tokens 1000000 --dim 1024 --repeats 3
  # exact vs weight-by-weight ensembles
  python -m benchmarks.bench_scaling --device "$dev" --widths 64,256,1024,4096
  # score end to end with the Mardia blocks on the device
  python - <<PY
import time, numpy as np
from pft.residual import score
rng = np.random.default_rng(0)
x = rng.standard_normal((200_000, 1024), dtype=np.float32)
xh = x + 0.3 * rng.standard_normal(x.shape, dtype=np.float32)
for dev in (None, "$dev"):
    t = time.perf_counter(); score(x, xh, device=dev, progress=False)
    print(f"score 200k x 1024, device={dev}: {200_000 / (time.perf_counter() - t):.0f} tokens/s")
PY
} 2>&1 | tee gpu-bench.log

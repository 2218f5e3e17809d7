"""Networks per second: the exact layer-law sampler against weight-by-weight sampling.

Both samplers draw an ensemble of MLPs (ReLU at criticality, one input, depth 16) in batches and
return the same distribution of outputs; "weights" pays O(n²) per layer and network for the
weight matrices, "exact" O(n). Both are timed in the same run, on the same device.

    python -m benchmarks.bench_scaling [--device cpu] [--widths 64,256,1024] [--depth 16] [--seconds 2]
"""

from __future__ import annotations

import argparse
import time

__all__ = ["run", "main"]


def _rate(method: str, width: int, depth: int, device: str, seconds: float) -> tuple[float, int]:
    from pft.scaling import MLPConfig, sample_ensemble

    cfg = MLPConfig("relu", width, depth, C_W=2.0, C_b=0.0)
    n = 8 if method == "weights" else 512
    sample_ensemble(cfg, min(n, 64), [1.0], method=method, seed=0, device=device, progress=False)  # warm-up
    while True:
        t0 = time.perf_counter()
        sample_ensemble(cfg, n, [1.0], method=method, seed=1, device=device, progress=False)
        if device != "cpu":
            import torch

            torch.cuda.synchronize() if str(device).startswith("cuda") else None
        dt = time.perf_counter() - t0
        if dt >= seconds or n >= 1 << 22:
            return n / dt, n
        n = int(n * min(16.0, max(2.0, 1.2 * seconds / max(dt, 1e-4))))


def run(widths=(64, 256, 1024), depth: int = 16, device: str = "cpu", seconds: float = 2.0) -> list[dict]:
    """Time both samplers; one row per width with networks/s and the ratio exact / weights."""
    rows = []
    for width in widths:
        w, nw = _rate("weights", width, depth, device, seconds)
        e, ne = _rate("exact", width, depth, device, seconds)
        rows.append({"width": width, "depth": depth, "device": str(device), "weights_per_s": w,
                     "exact_per_s": e, "ratio": e / w, "weights_networks": nw, "exact_networks": ne})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_scaling", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--widths", default="64,256,1024")
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--seconds", type=float, default=2.0, help="minimum time per measurement")
    args = p.parse_args(argv)
    import torch

    rows = run([int(x) for x in args.widths.split(",")], args.depth, args.device, args.seconds)
    print(f"networks/s, ReLU MLP, depth {args.depth}, one input, float64, device {args.device} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"{'width':>6}  {'weights/s':>12}  {'exact/s':>12}  {'exact/weights':>13}")
    for r in rows:
        print(f"{r['width']:>6}  {r['weights_per_s']:>12.1f}  {r['exact_per_s']:>12.1f}  {r['ratio']:>12.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

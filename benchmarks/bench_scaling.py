"""Networks per second: the exact layer-law sampler against weight-by-weight sampling.

Both samplers draw an ensemble of MLPs (ReLU at criticality, one input, depth 16) in batches and
return the same distribution of outputs; "weights" pays O(n²) per layer and network for the
weight matrices, "exact" O(n). Both are timed in the same run, on the same device, interleaved
(best of ``repeats``). Rates are per wall-clock second; the CPU-time ratio is printed too, since
on a shared machine the load of other processes moves wall-clock rates but hardly CPU time.

    python -m benchmarks.bench_scaling [--device cpu] [--widths 64,256,1024] [--depth 16]
                                       [--seconds 2] [--repeats 2] [--csv OUT.csv]
"""

from __future__ import annotations

import argparse
import time

__all__ = ["run", "main"]


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _rate(method: str, width: int, depth: int, device: str, seconds: float) -> tuple[float, float, int]:
    """(networks per wall second, networks per CPU second, networks in the timed call)."""
    from pft.scaling import MLPConfig, sample_ensemble

    cfg = MLPConfig("relu", width, depth, C_W=2.0, C_b=0.0)
    n = 8 if method == "weights" else 512
    sample_ensemble(cfg, min(n, 64), [1.0], method=method, seed=0, device=device, progress=False)  # warm-up
    while True:
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        sample_ensemble(cfg, n, [1.0], method=method, seed=1, device=device, progress=False)
        _sync(device)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if dt >= seconds or n >= 1 << 22:
            return n / dt, n / max(dc, 1e-9), n
        n = int(n * min(16.0, max(2.0, 1.2 * seconds / max(dt, 1e-4))))


def run(widths=(64, 256, 1024), depth: int = 16, device: str = "cpu", seconds: float = 2.0,
        repeats: int = 2) -> list[dict]:
    """Time both samplers; one row per width with networks/s and the ratio exact / weights.

    Each rate is the best of ``repeats`` interleaved measurements (weights, exact, weights, ...),
    so a burst of load from other processes biases neither side.
    """
    rows = []
    for width in widths:
        best = {"weights": (0.0, 0.0, 0), "exact": (0.0, 0.0, 0)}
        for _ in range(max(1, repeats)):
            for method in ("weights", "exact"):
                r = _rate(method, width, depth, device, seconds / max(1, repeats))
                if r[0] > best[method][0]:
                    best[method] = r
        (w, wc, nw), (e, ec, ne) = best["weights"], best["exact"]
        rows.append({"width": width, "depth": depth, "device": str(device), "weights_per_s": w, "exact_per_s": e,
                     "ratio": e / w, "cpu_ratio": ec / wc, "weights_networks": nw, "exact_networks": ne})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_scaling", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--widths", default="64,256,1024")
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--seconds", type=float, default=2.0, help="minimum time per rate (split over repeats)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved measurements; the best counts")
    p.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    args = p.parse_args(argv)
    import os

    import torch

    rows = run([int(x) for x in args.widths.split(",")], args.depth, args.device, args.seconds, args.repeats)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"networks/s, ReLU MLP, depth {args.depth}, one input, float64, device {args.device} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, load {load:.1f})")
    print(f"{'width':>6}  {'weights/s':>12}  {'exact/s':>12}  {'exact/weights':>13}  {'(CPU time)':>10}")
    for r in rows:
        print(f"{r['width']:>6}  {r['weights_per_s']:>12.1f}  {r['exact_per_s']:>12.1f}  {r['ratio']:>12.0f}x"
              f"  {r['cpu_ratio']:>9.0f}x")
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

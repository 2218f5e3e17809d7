"""Numeric Laplace expansion: seconds for d = 100 at order 1 and d = 10 at order 2, against the
cost of the Hessian alone (``torch.func.hessian``) measured in the same run.

Run: ``python -m benchmarks.bench_laplace``. ``run()`` returns the rows for the suite.

The action is a small random "network" around a quadratic well,
``S(x) = ½ xᵀAx + ¼ Σ_j [log cosh u_j + 0.05 u_j³]``, ``u = W x + b`` with ``W`` of shape
``(d, d)``: every vertex tensor is dense and the minimum is not at a round point (Newton
refines it from ``x = 0``). The first call pays torch.func's one-off set-up and the diagram
enumeration; the warm time is the steady state.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from pft.errors import OutOfReachError
from pft.numeric import laplace


def make_action(d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    A = A @ A.T + torch.eye(d, dtype=torch.float64)
    W = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    b = 0.1 * torch.randn(d, generator=g, dtype=torch.float64)

    def action(x):
        u = W @ x + b
        return 0.5 * x @ A @ x + 0.25 * (torch.log(torch.cosh(u)) + 0.05 * u**3).sum()

    return action


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def run(quick: bool = False):
    """One row per (d, order): cold and warm seconds of ``pft.numeric.laplace``, the Hessian-only
    baseline, their ratio, c_1 (and c_2); then the refusal time of a size out of reach."""
    cases = [(10, 1), (10, 2), (100, 1)] if quick else [(10, 1), (10, 2), (30, 2), (100, 1)]
    rows = []
    for d, order in cases:
        fn = make_action(d)
        x0 = np.zeros(d)
        cold, res = _timed(laplace, fn, x0, order=order)
        warm, res = _timed(laplace, fn, x0, order=order)
        x = torch.as_tensor(res.point)
        torch.func.hessian(fn)(x)
        hess_s = min(_timed(torch.func.hessian(fn), x)[0] for _ in range(3))
        rows.append({
            "d": d, "order": order, "cold_s": cold, "warm_s": warm, "hessian_s": hess_s,
            "ratio_warm_to_hessian": warm / hess_s, "c1": res.coefficients[0],
            "c2": res.coefficients[1] if order > 1 else "", "target_s": 10.0,
        })
    fn = make_action(100)
    t0 = time.perf_counter()
    try:
        laplace(fn, np.zeros(100), order=2)
        refused = "no"
    except OutOfReachError:
        refused = "OutOfReachError"
    rows.append({"d": 100, "order": 2, "cold_s": time.perf_counter() - t0, "c1": refused})
    return rows


def main():
    rows = run()
    print("pft.numeric.laplace (float64, CPU) vs torch.func.hessian alone, same run:")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    width = {k: max(len(k), *(len(fmt(r.get(k, ""))) for r in rows)) for k in keys}
    print("  ".join(k.rjust(width[k]) for k in keys))
    for r in rows:
        print("  ".join(fmt(r.get(k, "")).rjust(width[k]) for k in keys))


if __name__ == "__main__":
    main()

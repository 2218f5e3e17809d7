"""Cost of the missed-feature search (issue 12): ``PerturbativeBackground(basis="features")``
against the same fit with ``basis="principal"`` (no search), both on an already fitted Gaussian,
and against the Gaussian background fit and one float64 ``XᵀX`` over the training rows, in one
run. Target: the search adds at most two ``XᵀX`` passes over the training rows.

The search is timed two ways: the features fit minus the principal fit (what it adds; the
difference of two timings, so noisy on a shared machine), and the time spent inside the search
itself (sparse coding on the sample and its streamed refinement, the pursuits, the held-out
selection pass), measured by wrapping it during the features fit. Its in-memory part works on
at most ``max(2048, 2²¹/d)`` rows whatever N is (sparse coding on half of them, the pursuits on
all, float32 products), so the ratio falls as N grows. The features fit is also timed from
chunks read in passes (a list, and a function that takes the ``keep(n)`` pushdown), as a ratio
to the same fit on the array.

    python -m benchmarks.bench_directions [--tokens 40000] [--dim 384] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.bench_background import _best


def run(tokens: int = 40_000, dim: int = 384, repeats: int = 2, seed: int = 0, quick: bool = False) -> list[dict]:
    from pft.numeric import GaussianBackground, PerturbativeBackground

    if quick:
        tokens, dim, repeats = 10_000, 128, 1
    rng = np.random.default_rng(seed)
    # a residual with 16 sparse non-negative features over a correlated Gaussian
    feats = rng.normal(size=(16, dim))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    codes = rng.exponential(size=(tokens, 16)) * (rng.random((tokens, 16)) < np.geomspace(0.3, 0.003, 16))
    X = rng.normal(size=(tokens, dim)) * np.linspace(0.3, 1.5, dim) + 3 * codes @ feats
    t_xtx = _best(lambda: X.T @ X, repeats)
    gauss = GaussianBackground().fit(X)
    t_gauss = _best(lambda: GaussianBackground().fit(X), repeats)
    t_pc = _best(lambda: PerturbativeBackground(basis="principal", gaussian=gauss).fit(X), repeats)
    import pft.numeric._perturbative as _pert

    inside = []
    wrapped = _pert.search_and_select

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = wrapped(*a, **k)
        inside.append(time.perf_counter() - t0)
        return out

    _pert.search_and_select = timed
    try:
        t_ft = _best(lambda: PerturbativeBackground(basis="features", gaussian=gauss).fit(X), repeats)
    finally:
        _pert.search_and_select = wrapped
    t_in = min(inside)
    t_ica = _best(lambda: PerturbativeBackground(basis="ica", gaussian=gauss).fit(X), repeats)
    # the same features fit from chunks read in passes (8192 rows each): a list, and a function
    # that takes the keep(n) pushdown (rows a pass does not use are never sliced out)
    step = 8192
    chunks = [X[a : a + step] for a in range(0, tokens, step)]

    def pushdown(keep=None):
        for c in chunks:
            yield c if keep is None else c[keep(len(c))]

    t_list = _best(lambda: PerturbativeBackground(basis="features", gaussian=gauss).fit(chunks), repeats)
    t_push = _best(lambda: PerturbativeBackground(basis="features", gaussian=gauss).fit(pushdown), repeats)
    search, ica = t_ft - t_pc, t_ica - t_pc
    return [
        {"benchmark": "direction search", "what": f"XᵀX float64, {tokens} x {dim}", "seconds": t_xtx, "ratio_to_xtx": 1.0},
        {"benchmark": "direction search", "what": "Gaussian background fit (Ledoit–Wolf)", "seconds": t_gauss,
         "ratio_to_xtx": t_gauss / t_xtx},
        {"benchmark": "direction search", "what": "search of basis='features' (fit minus 'principal' fit)", "seconds": search,
         "ratio_to_xtx": search / t_xtx, "ratio_to_background_fit": search / t_gauss},
        {"benchmark": "direction search", "what": "search of basis='features', timed inside the fit", "seconds": t_in,
         "ratio_to_xtx": t_in / t_xtx, "ratio_to_background_fit": t_in / t_gauss},
        {"benchmark": "direction search", "what": "search of basis='ica' (the previous default)", "seconds": ica,
         "ratio_to_xtx": ica / t_xtx, "ratio_to_background_fit": ica / t_gauss},
        {"benchmark": "direction search", "what": "features fit from a list of 8192-row chunks", "seconds": t_list,
         "ratio_to_xtx": t_list / t_xtx, "ratio_to_array_fit": t_list / t_ft},
        {"benchmark": "direction search", "what": "features fit from a function taking keep(n)", "seconds": t_push,
         "ratio_to_xtx": t_push / t_xtx, "ratio_to_array_fit": t_push / t_ft},
    ]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=40_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    for row in run(a.tokens, a.dim, a.repeats):
        print(row)

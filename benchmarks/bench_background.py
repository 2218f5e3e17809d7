"""Background fit throughput and memory on activations of LLM size (issue 2).

Fits a Ledoit–Wolf Gaussian background to N x d float32 activations three ways, in one run:
pft streamed in chunks (shrinkage included), ``numpy.cov`` (no shrinkage) and scikit-learn's
``LedoitWolf().fit``; then ``pft.residual.score`` end to end. Prints tokens/s and ratios.
With ``--device`` (``cuda``, or ``cpu`` for torch on the host) the chunks are torch tensors on
that device, fitted in float64 / float32 / TF32 against ``torch.cov`` and against pft's numpy fit
of the same data.

    python -m benchmarks.bench_background [--tokens 100000] [--dim 384] [--repeats 3]
                                          [--device cuda] [--chunk 8192] [--csv OUT.csv]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np


def _best(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _peak_mib(fn):
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def run(
    tokens: int = 100_000,
    dim: int = 384,
    repeats: int = 3,
    chunk: int = 8192,
    seed: int = 0,
    quick: bool = False,
    device: str | None = None,
) -> list[dict]:
    """One row per method. ``device=None``: the numpy benchmark; a torch device (``"cuda"``, or
    ``"cpu"`` for torch on the host): the same fit on torch tensors there."""
    if quick:
        tokens, repeats = 20_000, 1
    from sklearn.covariance import LedoitWolf

    from pft.numeric import GaussianBackground
    from pft.residual import score

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((dim, dim)).astype(np.float32) / np.sqrt(dim)
    X = (rng.standard_normal((tokens, dim), dtype=np.float32) @ A).astype(np.float32)
    data_mib = X.nbytes / 2**20
    if device is not None:
        return _run_device(X, chunk, repeats, device, data_mib)
    chunks = lambda: (X[a : a + chunk] for a in range(0, tokens, chunk))  # noqa: E731

    t_pft = _best(lambda: GaussianBackground(shrinkage="ledoit-wolf").fit(chunks()), repeats)
    t_f32 = _best(lambda: GaussianBackground(shrinkage="ledoit-wolf", precision="float32").fit(chunks()), repeats)
    t_cov = _best(lambda: np.cov(X, rowvar=False), repeats)
    t_lw = _best(lambda: LedoitWolf().fit(X), max(1, repeats - 1))
    mem_pft = _peak_mib(lambda: GaussianBackground(shrinkage="ledoit-wolf").fit(chunks()))
    mem_cov = _peak_mib(lambda: np.cov(X, rowvar=False))
    ref = GaussianBackground().fit(chunks()).covariance_
    err32 = _relerr(GaussianBackground(precision="float32").fit(chunks()).covariance_, ref)

    # score end to end on the same size (the residual is a noisy copy)
    Xh = X + 0.3 * rng.standard_normal((tokens, dim), dtype=np.float32)
    t0 = time.perf_counter()
    score(X, Xh, progress=False)
    t_score = time.perf_counter() - t0

    return [
        {"benchmark": "background fit", "what": "pft GaussianBackground (LW, streamed)", "tokens_per_s": tokens / t_pft,
         "ratio": 1.0, "peak_MiB": mem_pft, "note": f"data {data_mib:.0f} MiB float32"},
        {"benchmark": "background fit", "what": "pft, precision='float32'", "tokens_per_s": tokens / t_f32,
         "ratio": t_pft / t_f32, "peak_MiB": float("nan"), "note": f"speed-up over float64; cov rel. error {err32:.1e}"},
        {"benchmark": "background fit", "what": "numpy.cov (no shrinkage)", "tokens_per_s": tokens / t_cov,
         "ratio": t_cov / t_pft, "peak_MiB": mem_cov, "note": "ratio = baseline time / pft time"},
        {"benchmark": "background fit", "what": "sklearn LedoitWolf().fit", "tokens_per_s": tokens / t_lw,
         "ratio": t_lw / t_pft, "peak_MiB": float("nan"), "note": "ratio = baseline time / pft time"},
        {"benchmark": "score", "what": "pft.residual.score end to end", "tokens_per_s": tokens / t_score,
         "ratio": t_score / t_pft, "peak_MiB": float("nan"), "note": "ratio = score time / background fit time"},
    ]


def _relerr(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _run_device(X, chunk, repeats, device, data_mib) -> list[dict]:
    """The same fit on a torch device: float64, float32 and TF32 arithmetic, against torch's own
    float64 ``cov`` on the same tensor (times include a device synchronisation), and pft's numpy
    fit of the same rows on the host (one run: the host baseline)."""
    import torch

    from pft.numeric import GaussianBackground

    T = torch.as_tensor(X, device=device)
    tokens = T.shape[0]
    chunks = lambda: (T[a : a + chunk] for a in range(0, tokens, chunk))  # noqa: E731

    def timed(fn):
        def run():
            fn()
            if T.is_cuda:
                torch.cuda.synchronize()
        run()  # warm-up
        return _best(run, repeats)

    host_chunks = lambda: (X[a : a + chunk] for a in range(0, tokens, chunk))  # noqa: E731
    t_host = _best(lambda: GaussianBackground().fit(host_chunks()), 1)

    from pft.numeric import Moments

    ref = GaussianBackground().fit(chunks()).covariance_
    t_cov = timed(lambda: torch.cov(T.to(torch.float64).T))
    # the streaming pass alone (what grows with N), against the same torch.cov
    t_pass = timed(lambda: Moments.from_chunks(chunks()))
    rows = [{"benchmark": "background fit", "what": f"pft streaming pass (Moments.from_chunks) on {device}, float64",
             "tokens_per_s": tokens / t_pass, "ratio": t_cov / t_pass, "peak_MiB": float("nan"),
             "note": "ratio = torch.cov(float64) time / this; the fit adds a fixed O(d^3) eigendecomposition"}]
    t64 = None
    for prec in ("float64", "float32", "tf32"):
        t = timed(lambda: GaussianBackground(precision=prec, device=device).fit(chunks()))
        t64 = t64 or t
        err = _relerr(GaussianBackground(precision=prec, device=device).fit(chunks()).covariance_, ref)
        rows.append({"benchmark": "background fit", "what": f"pft on {device}, precision={prec}",
                     "tokens_per_s": tokens / t, "ratio": t_cov / t, "peak_MiB": float("nan"),
                     "note": f"ratio = torch.cov(float64) time / this; cov rel. error {err:.1e}"})
    rows.append({"benchmark": "background fit", "what": f"torch.cov float64 on {device}", "tokens_per_s": tokens / t_cov,
                 "ratio": 1.0, "peak_MiB": float("nan"), "note": f"data {data_mib:.0f} MiB float32"})
    rows.append({"benchmark": "background fit", "what": "pft on the host (numpy), float64", "tokens_per_s": tokens / t_host,
                 "ratio": t_cov / t_host, "peak_MiB": float("nan"),
                 "note": f"device float64 fit is {t_host / t64:.1f}x faster than this"})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--chunk", type=int, default=8192, help="rows per chunk (default 8192)")
    p.add_argument("--device", default=None,
                   help="a torch device (cuda, or cpu for torch on the host); default: the numpy benchmark")
    p.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    a = p.parse_args(argv)
    rows = run(a.tokens, a.dim, a.repeats, chunk=a.chunk, device=a.device)
    print(f"{'benchmark':<16}{'what':<40}{'tokens/s':>12}{'ratio':>8}{'peak MiB':>10}  note")
    for r in rows:
        print(f"{r['benchmark']:<16}{r['what']:<40}{r['tokens_per_s']:>12.0f}{r['ratio']:>8.2f}{r['peak_MiB']:>10.1f}  {r['note']}")
    if a.csv:
        _write_csv(a.csv, rows)


def _write_csv(path, rows) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()

"""The statistics a residual report is made of, each a plain function on arrays."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pft.errors import InputError
from pft.numeric._reduce import LocalReducer, Reducer, uniforms

__all__ = ["anchor_metrics", "mardia", "ridge_r2", "participation_ratio"]


def _sq(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def anchor_metrics(x: np.ndarray, xhat: np.ndarray, *, reduce: Reducer | None = None) -> dict[str, float]:
    """The reconstruction metrics the community reports, pooled over tokens in float64.

    With ``r = x − x̂``:

    - ``mse = mean_t ‖r_t‖²`` (sum over dimensions, mean over tokens);
    - ``fvu = mean_t ‖r_t‖² / (mean_t ‖x_t‖² − ‖mean_t x_t‖²)`` (SAELens ≥ 6: predicting the
      mean gives ``explained_variance = 1 − fvu = 0``, the identity 1);
    - ``explained_variance_legacy = mean_t [1 − ‖r_t‖² / ‖x_t − x̄‖²]`` (mean of per-token
      ratios; tokens with ``x_t = x̄`` are excluded from that mean);
    - ``cosine = mean_t cos(x_t, x̂_t)`` (0 for a token where either vector is zero).

    With a distributed ``reduce``, every mean runs over the tokens of all ranks.
    """
    red = reduce or LocalReducer()
    r = x - xhat
    r2 = _sq(r)
    n = float(red.sum(x.shape[0]))
    mu = red.sum(x.sum(axis=0)) / n
    nx2 = _sq(x)
    nx = np.sqrt(nx2)
    nh = np.sqrt(_sq(xhat))
    denom = nx * nh
    cos = np.divide(np.einsum("ij,ij->i", x, xhat), denom, out=np.zeros_like(denom), where=denom > 0)
    dev = _sq(x - mu)
    ok = dev > 0
    sums = red.sum([r2.sum(), nx2.sum(), cos.sum(), np.sum(1.0 - r2[ok] / dev[ok]), ok.sum()])
    total = float(sums[1] / n - mu @ mu)
    mse = float(sums[0] / n)
    fvu = mse / total if total > 0 else math.inf
    return {
        "mse": mse,
        "fvu": fvu,
        "explained_variance": 1.0 - fvu,
        "explained_variance_legacy": float(sums[3] / sums[4]) if sums[4] > 0 else math.nan,
        "cosine": float(sums[2] / n),
    }


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """``(Σλ)² / Σλ²``: between 1 (one direction) and d (isotropic)."""
    lam = np.clip(np.asarray(eigenvalues, dtype=float), 0.0, None)
    s2 = float(np.sum(lam**2))
    return float(np.sum(lam)) ** 2 / s2 if s2 > 0 else 0.0


def mardia(
    x: np.ndarray,
    *,
    chunk: int = 2048,
    device: Any = None,
    progress: bool = False,
    reduce: Reducer | None = None,
) -> dict[str, float]:
    """Mardia's (1970) multivariate skewness ``b₁`` and kurtosis ``b₂`` with Gaussian-null z-scores.

    The rows are whitened with their own mean and 1/N covariance (on its numerical support of
    dimension ``p``), ``w_t``. Then

    - ``b₂ = mean_t ‖w_t‖⁴``; null mean ``p(p+2)(N−1)/(N+1)``, null variance ``8p(p+2)/N``,
      ``z = (b₂ − mean)/√var``;
    - ``b₁ = N⁻² Σ_{s,t} (w_s·w_t)³``; under the null ``N b₁/6 ~ χ²`` with
      ``f = p(p+1)(p+2)/6`` degrees of freedom, so the null mean is ``6f/N`` and
      ``z = (N b₁/6 − f)/√(2f)``.

    ``b₁`` is a sum over all pairs: O(N²p) time, computed in (chunk × N) Gram blocks so memory
    stays O(chunk·N + N·p); with ``device`` (a torch device) the blocks run there in float64.
    With a distributed ``reduce`` the rows of all ranks count (each rank gathers the others'
    whitened rows for the pair sum).
    """
    red = reduce or LocalReducer()
    N = int(red.sum(x.shape[0]))
    if N < 3:
        raise InputError(f"Mardia statistics need at least 3 rows; got {N}.")
    z = x - red.sum(x.sum(axis=0)) / N
    C = red.sum(z.T @ z) / N
    lam, V = np.linalg.eigh(C)
    keep = lam > max(lam.max(), 0.0) * len(lam) * np.finfo(float).eps
    p = int(keep.sum())
    w = z @ (V[:, keep] / np.sqrt(lam[keep]))
    b2 = float(red.sum(np.sum(_sq(w) ** 2))) / N
    w_all = red.gather_rows(w)
    b1_sum = 0.0
    starts = range(0, w.shape[0], chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="mardia skewness", unit="block", leave=False)
    if device is not None:
        import torch

        wt = torch.as_tensor(w, dtype=torch.float64, device=device)
        wa = wt if w_all is w else torch.as_tensor(w_all, dtype=torch.float64, device=device)
        for a in starts:
            b1_sum += float(((wt[a : a + chunk] @ wa.T) ** 3).sum())
    else:
        for a in starts:
            G = w[a : a + chunk] @ w_all.T
            b1_sum += float(np.sum(G * G * G))
    b1 = float(red.sum(b1_sum)) / N**2
    b2_mean = p * (p + 2) * (N - 1) / (N + 1)
    b2_sd = math.sqrt(8 * p * (p + 2) / N)
    f = p * (p + 1) * (p + 2) / 6
    return {
        "mardia_skewness": b1,
        "mardia_kurtosis": b2,
        "mardia_skewness_null": 6 * f / N,
        "mardia_kurtosis_null": b2_mean,
        "mardia_skewness_z": (N * b1 / 6 - f) / math.sqrt(2 * f),
        "mardia_kurtosis_z": (b2 - b2_mean) / b2_sd,
        "mardia_dim": p,
    }


def ridge_r2(
    X_train: np.ndarray,
    Y_train: np.ndarray,
    X_test: np.ndarray,
    Y_test: np.ndarray,
    *,
    seed: int = 0,
    alphas: np.ndarray | None = None,
    reduce: Reducer | None = None,
    offset: int = 0,
) -> float:
    """Held-out R² of a ridge regression of ``Y`` on ``X`` (both with intercept).

    The penalty is chosen from ``alphas`` (default ``10^{-6 … 2}`` times the mean eigenvalue of
    the centred ``XᵀX``) on a random 20 % validation split of the training rows, then the model
    is refitted on all training rows. R² is pooled over output dimensions:
    ``1 − Σ‖y − ŷ‖² / Σ‖y − ȳ_train‖²`` on the test rows. This is the "dark matter" measure of
    Engels et al. (2024) when ``Y`` is the residual and ``X`` the activations. With a
    distributed ``reduce`` each rank passes its own rows (``offset``: the global index of its
    first training row, which fixes the validation split independently of sharding).
    """
    red = reduce or LocalReducer()
    val = uniforms(offset, X_train.shape[0], seed, 7) < 0.2
    fit = ~val

    def stats(mask):
        Xs, Ys = X_train[mask], Y_train[mask]
        n = float(red.sum(Xs.shape[0]))
        mx, my = red.sum(Xs.sum(axis=0)) / n, red.sum(Ys.sum(axis=0)) / n
        Xc, Yc = Xs - mx, Ys - my
        return n, red.sum(Xc.T @ Xc), red.sum(Xc.T @ Yc), mx, my

    nf, XtX_f, XtY_f, mx_f, my_f = stats(fit)
    nv, XtX_v, XtY_v, mx_v, my_v = stats(val)
    if nf < 2 or nv < 1:
        raise InputError(f"too few training rows ({int(nf + nv)}) for the ridge regression's validation split.")
    scale = float(np.trace(XtX_f)) / XtX_f.shape[0]
    if alphas is None:
        alphas = scale * np.logspace(-6, 2, 9)
    s, V = np.linalg.eigh(XtX_f)
    VtXtY = V.T @ XtY_f
    Pv = (X_train[val] - mx_f) @ V
    Yv = Y_train[val] - my_f
    alphas = np.maximum(np.asarray(alphas, dtype=float), 1e-300)
    errs = red.sum([np.sum((Yv - Pv @ (VtXtY / (s + a)[:, None])) ** 2) for a in alphas])
    best = float(alphas[int(np.argmin(errs))])
    # all training rows: merge the two blocks' centred cross-products (Chan et al.)
    n = nf + nv
    dx, dy = mx_v - mx_f, my_v - my_f
    w = nf * nv / n
    XtX = XtX_f + XtX_v + w * np.outer(dx, dx)
    XtY = XtY_f + XtY_v + w * np.outer(dx, dy)
    mx = mx_f + dx * (nv / n)
    my = my_f + dy * (nv / n)
    XtX[np.diag_indices_from(XtX)] += best
    B = np.linalg.solve(XtX, XtY)
    resid = (Y_test - my) - (X_test - mx) @ B
    sse, total = red.sum([np.sum(resid**2), np.sum((Y_test - my) ** 2)])
    return 1.0 - float(sse) / float(total) if total > 0 else math.nan

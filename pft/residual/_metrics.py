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


class AnchorSums:
    """Two passes over (x, x̂) chunks that add up to :func:`anchor_metrics`."""

    def __init__(self, d: int) -> None:
        self.n = 0.0
        self.sx = np.zeros(d)
        self.sums = np.zeros(3)  # Σ‖r‖², Σ‖x‖², Σ cos
        self.legacy = np.zeros(2)  # Σ (1 − ‖r‖²/‖x − x̄‖²), count of tokens with x ≠ x̄

    def add(self, x: np.ndarray, xhat: np.ndarray) -> None:
        nx2 = _sq(x)
        denom = np.sqrt(nx2 * _sq(xhat))
        cos = np.divide(np.einsum("ij,ij->i", x, xhat), denom, out=np.zeros_like(denom), where=denom > 0)
        self.n += x.shape[0]
        self.sx += x.sum(axis=0)
        self.sums += [_sq(x - xhat).sum(), nx2.sum(), cos.sum()]

    def set_mean(self, red: Reducer) -> None:
        self.n = float(red.sum(self.n))
        self.mu = red.sum(self.sx) / self.n

    def add2(self, x: np.ndarray, xhat: np.ndarray) -> None:
        dev = _sq(x - self.mu)
        ok = dev > 0
        self.legacy += [np.sum(1.0 - _sq(x - xhat)[ok] / dev[ok]), ok.sum()]

    def result(self, red: Reducer) -> dict[str, float]:
        sums, legacy, n = red.sum(self.sums), red.sum(self.legacy), self.n
        total = float(sums[1] / n - self.mu @ self.mu)
        mse = float(sums[0] / n)
        fvu = mse / total if total > 0 else math.inf
        return {
            "mse": mse,
            "fvu": fvu,
            "explained_variance": 1.0 - fvu,
            "explained_variance_legacy": float(legacy[0] / legacy[1]) if legacy[1] > 0 else math.nan,
            "cosine": float(sums[2] / n),
        }


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
    acc = AnchorSums(x.shape[1])
    acc.add(x, xhat)
    acc.set_mean(red)
    acc.add2(x, xhat)
    return acc.result(red)


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

    ``b₁`` is a sum over all pairs: O(N²p) time, computed in (chunk × N) Gram blocks of at most
    16 MiB, so memory stays O(N·p); with ``device`` (a torch device) the blocks run there in float64.
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
    chunk = max(1, min(chunk, 2**21 // max(1, w_all.shape[0])))  # Gram blocks of ≤ 16 MiB
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


class RidgeSums:
    """Passes over training and test chunks that add up to :func:`ridge_r2`: means, centred
    cross-products, validation errors per penalty, test errors."""

    def __init__(self, p: int, q: int, alphas: np.ndarray | None = None) -> None:
        self.alphas = alphas
        self.n = np.zeros(2)  # fit, validation
        self.sx = np.zeros((2, p))
        self.sy = np.zeros((2, q))
        self.XtX = np.zeros((2, p, p))
        self.XtY = np.zeros((2, p, q))

    # pass 1: means of the two training blocks
    def add_train(self, X: np.ndarray, Y: np.ndarray, val: np.ndarray) -> None:
        for k, m in enumerate((~val, val)):
            self.n[k] += m.sum()
            self.sx[k] += X[m].sum(axis=0)
            self.sy[k] += Y[m].sum(axis=0)

    def set_means(self, red: Reducer) -> None:
        self.n = red.sum(self.n)
        if self.n[0] < 2 or self.n[1] < 1:
            raise InputError(f"too few training rows ({int(self.n.sum())}) for the ridge regression's validation split.")
        self.mx = red.sum(self.sx) / self.n[:, None]
        self.my = red.sum(self.sy) / self.n[:, None]

    # pass 2: centred cross-products
    def add_central(self, X: np.ndarray, Y: np.ndarray, val: np.ndarray) -> None:
        for k, m in enumerate((~val, val)):
            Xc, Yc = X[m] - self.mx[k], Y[m] - self.my[k]
            self.XtX[k] += Xc.T @ Xc
            self.XtY[k] += Xc.T @ Yc

    def set_cross(self, red: Reducer) -> None:
        self.XtX, self.XtY = red.sum(self.XtX), red.sum(self.XtY)
        XtX_f = self.XtX[0]
        if self.alphas is None:
            self.alphas = float(np.trace(XtX_f)) / XtX_f.shape[0] * np.logspace(-6, 2, 9)
        self.alphas = np.maximum(np.asarray(self.alphas, dtype=float), 1e-300)
        self.s, self.V = np.linalg.eigh(XtX_f)
        self.VtXtY = self.V.T @ self.XtY[0]
        self.val_err = np.zeros(len(self.alphas))

    # pass 3: validation error of each penalty
    def add_val(self, X: np.ndarray, Y: np.ndarray, val: np.ndarray) -> None:
        Pv = (X[val] - self.mx[0]) @ self.V
        Yv = Y[val] - self.my[0]
        self.val_err += [np.sum((Yv - Pv @ (self.VtXtY / (self.s + a)[:, None])) ** 2) for a in self.alphas]

    def set_fit(self, red: Reducer) -> None:
        best = float(self.alphas[int(np.argmin(red.sum(self.val_err)))])
        # all training rows: merge the two blocks' centred cross-products (Chan et al.)
        nf, nv = self.n
        n = nf + nv
        dx, dy = self.mx[1] - self.mx[0], self.my[1] - self.my[0]
        w = nf * nv / n
        XtX = self.XtX[0] + self.XtX[1] + w * np.outer(dx, dx)
        XtY = self.XtY[0] + self.XtY[1] + w * np.outer(dx, dy)
        self.mx_all = self.mx[0] + dx * (nv / n)
        self.my_all = self.my[0] + dy * (nv / n)
        XtX[np.diag_indices_from(XtX)] += best
        self.B = np.linalg.solve(XtX, XtY)
        self.test = np.zeros(2)

    # pass 4: held-out error and total
    def add_test(self, X: np.ndarray, Y: np.ndarray) -> None:
        Yc = Y - self.my_all
        self.test += [np.sum((Yc - (X - self.mx_all) @ self.B) ** 2), np.sum(Yc**2)]

    def r2(self, red: Reducer) -> float:
        sse, total = red.sum(self.test)
        return 1.0 - float(sse) / float(total) if total > 0 else math.nan


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
    acc = RidgeSums(X_train.shape[1], Y_train.shape[1], alphas)
    acc.add_train(X_train, Y_train, val)
    acc.set_means(red)
    acc.add_central(X_train, Y_train, val)
    acc.set_cross(red)
    acc.add_val(X_train, Y_train, val)
    acc.set_fit(red)
    acc.add_test(X_test, Y_test)
    return acc.r2(red)

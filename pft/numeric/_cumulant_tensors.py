"""Third and fourth joint cumulant tensors of a few projections: their streamed estimate with
per-entry standard errors, and the Edgeworth (tensor-Hermite) polynomial they define."""

from __future__ import annotations

from typing import Any

import numpy as np

from pft.errors import InputError
from pft.distributed import LocalReducer, Reducer

__all__ = ["sample_cumulants", "edgeworth_polynomial", "CumulantSums", "soft_threshold"]


def _block_rows(r: int) -> int:
    """Rows per block of the (rows, r²) outer-product matrices: 4 MiB each."""
    return max(16, 2**19 // (r * r))


class CumulantSums:
    """Two passes over chunks of rows (a mean pass, then a central pass) that add up to the
    third and fourth joint cumulants with per-entry standard errors."""

    def __init__(self, r: int) -> None:
        self.r = r
        self.n = 0.0
        self.s1 = np.zeros(r)
        self.C = np.zeros((r, r))
        self.m3 = np.zeros((r, r, r))
        self.s3 = np.zeros((r, r, r))
        self.m4 = np.zeros((r, r, r, r))
        self.s4 = np.zeros((r, r, r, r))

    def add_mean(self, y: np.ndarray) -> None:
        self.n += y.shape[0]
        self.s1 += y.sum(axis=0)

    def set_mean(self, red: Reducer) -> None:
        self.n = float(red.sum(self.n))
        self.mean = red.sum(self.s1) / self.n

    def add_central(self, y: np.ndarray) -> None:
        # every sum is a Gram product of per-row outer products (r² columns), so the r⁴ tensors
        # come from one matrix product per chunk instead of r⁴-wide elementwise work:
        # Σ z_i z_j z_k z_l = (VᵀV)_(ij)(kl) with V = z ⊗ z, and the squares' sums likewise from
        # a = z ∘ z.
        z = y - self.mean
        r = self.r
        self.C += z.T @ z
        step = _block_rows(r)
        for a in range(0, z.shape[0], step):
            zc = z[a : a + step]
            sq = zc * zc
            V = (zc[:, :, None] * zc[:, None, :]).reshape(len(zc), r * r)
            U = (sq[:, :, None] * sq[:, None, :]).reshape(len(zc), r * r)
            self.m3 += (V.T @ zc).reshape(r, r, r)
            self.s3 += (U.T @ sq).reshape(r, r, r)
            self.m4 += (V.T @ V).reshape(r, r, r, r)
            self.s4 += (U.T @ U).reshape(r, r, r, r)

    def result(self, red: Reducer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        N = self.n
        C, m3, s3, m4, s4 = (red.sum(t) / N for t in (self.C, self.m3, self.s3, self.m4, self.s4))
        k3_se = np.sqrt(np.maximum(s3 - m3**2, 0.0) / N)
        k4_se = np.sqrt(np.maximum(s4 - m4**2, 0.0) / N)
        gauss = (
            np.einsum("ij,kl->ijkl", C, C) + np.einsum("ik,jl->ijkl", C, C) + np.einsum("il,jk->ijkl", C, C)
        )
        return m3, k3_se, m4 - gauss, k4_se


def sample_cumulants(
    y: np.ndarray, *, reduce: Reducer | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Third and fourth joint cumulant tensors of the columns of ``y`` (N, r), with the
    standard error of every entry.

    Returns ``(k3, k3_se, k4, k4_se)`` with ``k3`` of shape (r, r, r) and ``k4`` (r, r, r, r).
    ``k4_ijkl = E[y_i y_j y_k y_l] − C_ij C_kl − C_ik C_jl − C_il C_jk`` about the sample mean,
    ``C`` the sample covariance. The standard errors are ``std(product)/√N`` of the per-token
    products, which is what the estimate's sampling noise is to leading order. With a
    distributed ``reduce`` the rows of all ranks count.
    """
    red = reduce or LocalReducer()
    acc = CumulantSums(y.shape[1])
    acc.add_mean(y)
    acc.set_mean(red)
    acc.add_central(y)
    return acc.result(red)


def edgeworth_polynomial(kappa3: Any, kappa4: Any, y: Any) -> np.ndarray:
    """The Edgeworth correction ``g(y) = κ₃·He₃(y)/6 + κ₄·He₄(y)/24`` at rows of ``y`` (N, r).

    ``He₃``, ``He₄`` are the tensor Hermite polynomials of a standard normal vector:
    ``κ₃·He₃(y) = κ_ijk y_i y_j y_k − 3 κ_ijj y_i`` and
    ``κ₄·He₄(y) = κ_ijkl y_i y_j y_k y_l − 6 κ_iikl y_k y_l + 3 κ_iikk`` (symmetric tensors,
    summed over repeated indices). This is the polynomial of :class:`PerturbativeBackground`'s
    density ``φ(y) [(1 + g/2)² + ε] / [1 + E_φ g²/4 + ε]``; the contractions run as matrix
    products on the rows of ``y ⊗ y`` in blocks of 4 MiB (no (N, r, r, r) intermediate).

    Parameters
    ----------
    kappa3 : (r, r, r) array_like
        Third joint cumulants (symmetric).
    kappa4 : (r, r, r, r) array_like
        Fourth joint cumulants (symmetric).
    y : (N, r) array_like
        Points, in the standardised coordinates of the cumulants.

    Returns
    -------
    (N,) ndarray

    Examples
    --------
    One dimension: ``g(y) = κ₃ (y³ − 3y)/6 + κ₄ (y⁴ − 6y² + 3)/24``.

    >>> g = edgeworth_polynomial(np.full((1, 1, 1), 0.6), np.full((1, 1, 1, 1), 1.2), [[2.0]])
    >>> round(float(g[0]), 6), round(0.6 * (8 - 6) / 6 + 1.2 * (16 - 24 + 3) / 24, 6)
    (-0.05, -0.05)
    """
    kappa3 = np.asarray(kappa3, dtype=np.float64)
    kappa4 = np.asarray(kappa4, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    r = kappa3.shape[0]
    if kappa3.shape != (r, r, r) or kappa4.shape != (r, r, r, r):
        raise InputError(
            f"`kappa3` and `kappa4` must have shapes (r, r, r) and (r, r, r, r); got {kappa3.shape} and {kappa4.shape}."
        )
    if y.ndim != 2 or y.shape[1] != r:
        raise InputError(f"`y` must have shape (N, {r}) (one column per cumulant index); got {y.shape}.")
    v3 = np.einsum("ijj->i", kappa3)
    M4 = np.einsum("iikl->kl", kappa4)
    tr4 = float(np.trace(M4))
    K3 = kappa3.reshape(r * r, r)
    K4 = kappa4.reshape(r * r, r * r)
    M4 = M4.reshape(r * r)
    out = np.empty(y.shape[0])
    step = _block_rows(r)
    for a in range(0, y.shape[0], step):
        yc = y[a : a + step]
        yy = (yc[:, :, None] * yc[:, None, :]).reshape(len(yc), r * r)  # rows of y ⊗ y
        t3 = np.sum((yy @ K3) * yc, axis=1) - 3.0 * yc @ v3
        t4 = np.sum((yy @ K4) * yy, axis=1) - 6.0 * yy @ M4 + 3.0 * tr4
        out[a : a + step] = t3 / 6.0 + t4 / 24.0
    return out


def soft_threshold(k: np.ndarray, se: np.ndarray, t: float) -> np.ndarray:
    return np.sign(k) * np.maximum(np.abs(k) - t * se, 0.0)


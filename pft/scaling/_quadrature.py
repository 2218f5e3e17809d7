"""Gaussian expectations by quadrature that is exact at a kink through the origin.

One input (d = 1): ``E_{z~N(0,K)} f(z) = (2π)^{-1/2} ∫₀^∞ [f(√K u) + f(−√K u)] e^{−u²/2} du``,
integrated with the Gauss rule of the half-range Hermite weight ``e^{−u²/2}`` on ``(0, ∞)``.
The symmetrised integrand of a piecewise polynomial with its kink at 0 is a polynomial in ``u``
on the half line (odd powers included), so the rule is exact for it; for smooth ``f`` it
converges spectrally. (Generalised Gauss–Laguerre with α = −½ in ``t = u²/2`` is exact only for
the even powers of ``u``; the half-range Hermite rule is exact for all of them.)

Two inputs (d = 2): polar coordinates ``z = L r (cos θ, sin θ)`` with ``L Lᵀ = K``. The kinks of
``σ(z₁), σ(z₂)`` are rays, i.e. fixed angles: the angular integral is split there and done by
Gauss–Legendre on each arc, the radial one by the Gauss rule of the weight ``r e^{−r²/2}``. For
positively homogeneous activations the integrand is ``r^m h(θ)`` with ``h`` smooth on each arc,
so the result is exact to rounding.

Three or four inputs (only the single-neuron four-point function of three or four distinct
inputs needs them): a tensor-product Gauss–Hermite rule in the eigenbasis of ``K`` — spectral for
smooth activations, about 1e-5 relative for kinked ones.

The Gauss rules for the half-line weights come from their moments (exact, in mpmath at high
precision) by Chebyshev's algorithm and Golub–Welsch.

References
----------
W. Gautschi, *Orthogonal Polynomials: Computation and Approximation*, OUP 2004, §2.1.7, §3.1.1.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["half_line_rule", "gaussian_rule", "expect"]

N_HALF = 96  # nodes of the half-line rules
N_ANGLE = 40  # Gauss–Legendre nodes per arc
N_HERMITE = {3: 36, 4: 20}


@lru_cache(maxsize=None)
def half_line_rule(n_nodes: int = N_HALF, power: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule for ``∫₀^∞ g(u) u^power e^{−u²/2} du``; returns ``(nodes, weights)``, shape (n,).

    Examples
    --------
    >>> u, w = half_line_rule(20, 0)
    >>> round(float(w @ u**3), 12) == 2.0   # ∫ u³ e^{-u²/2} du = 2
    True
    """
    import mpmath
    from scipy.linalg import eigh_tridiagonal

    n = n_nodes
    with mpmath.workdps(40 + 3 * n):
        # moments μ_k = ∫₀^∞ u^(k+power) e^{−u²/2} du = 2^((k+power−1)/2) Γ((k+power+1)/2)
        mu = [mpmath.mpf(2) ** (mpmath.mpf(k + power - 1) / 2) * mpmath.gamma(mpmath.mpf(k + power + 1) / 2)
              for k in range(2 * n)]
        alpha = [mpmath.mpf(0)] * n
        beta = [mpmath.mpf(0)] * n
        prev = [mpmath.mpf(0)] * (2 * n)
        cur = list(mu)
        alpha[0] = mu[1] / mu[0]
        beta[0] = mu[0]
        for k in range(1, n):
            nxt = [mpmath.mpf(0)] * (2 * n)
            for ell in range(k, 2 * n - k):
                nxt[ell] = cur[ell + 1] - alpha[k - 1] * cur[ell] - beta[k - 1] * prev[ell]
            alpha[k] = nxt[k + 1] / nxt[k] - cur[k] / cur[k - 1]
            beta[k] = nxt[k] / cur[k - 1]
            prev, cur = cur, nxt
        a = np.array([float(x) for x in alpha])
        b = np.array([float(mpmath.sqrt(x)) for x in beta[1:]])
        b0 = float(beta[0])
    nodes, vecs = eigh_tridiagonal(a, b)
    weights = b0 * vecs[0, :] ** 2
    return nodes, weights


@lru_cache(maxsize=None)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


@lru_cache(maxsize=None)
def _hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / math.sqrt(2 * math.pi)


def _rule_1d(var: float) -> tuple[np.ndarray, np.ndarray]:
    u, w = half_line_rule(N_HALF, 0)
    s = math.sqrt(max(var, 0.0))
    pts = np.concatenate([s * u, -s * u])
    wts = np.concatenate([w, w]) / math.sqrt(2 * math.pi)
    return pts[:, None], wts


def _rule_2d(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k11, k12, k22 = float(K[0, 0]), float(K[0, 1]), float(K[1, 1])
    if k11 <= 0.0 or k22 <= 0.0 or k11 * k22 - k12 * k12 <= 1e-14 * k11 * k22:
        # degenerate: z₂ is a multiple of z₁ (or one of them is 0); a one-dimensional rule
        if k11 > 0:
            pts, wts = _rule_1d(k11)
            return np.column_stack([pts[:, 0], pts[:, 0] * (k12 / k11)]), wts
        pts, wts = _rule_1d(k22)
        return np.column_stack([np.zeros_like(pts[:, 0]), pts[:, 0]]), wts
    l11 = math.sqrt(k11)
    l21 = k12 / l11
    l22 = math.sqrt(k22 - l21 * l21)
    # kinks of σ(z₁) at θ = ±π/2, of σ(z₂) where l21 cos θ + l22 sin θ = 0
    t2 = math.atan2(-l21, l22)
    cuts = np.sort(np.mod([math.pi / 2, -math.pi / 2, t2, t2 + math.pi], 2 * math.pi))
    edges = np.concatenate([cuts, [cuts[0] + 2 * math.pi]])
    x, wl = _legendre(N_ANGLE)
    thetas, tw = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi - lo <= 1e-15:
            continue
        thetas.append(0.5 * (hi - lo) * x + 0.5 * (hi + lo))
        tw.append(0.5 * (hi - lo) * wl / (2 * math.pi))
    theta = np.concatenate(thetas)
    tw = np.concatenate(tw)
    r, rw = half_line_rule(N_HALF, 1)  # ∫ r e^{−r²/2} dr = 1
    c, s = np.cos(theta), np.sin(theta)
    z1 = np.outer(l11 * c, r)
    z2 = np.outer(l21 * c + l22 * s, r)
    w = np.outer(tw, rw)
    return np.column_stack([z1.ravel(), z2.ravel()]), w.ravel()


def _rule_nd(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = K.shape[0]
    evals, evecs = np.linalg.eigh(K)
    A = evecs * np.sqrt(np.clip(evals, 0.0, None))
    x, w = _hermite(N_HERMITE[d])
    grids = np.meshgrid(*([x] * d), indexing="ij")
    wgrids = np.meshgrid(*([w] * d), indexing="ij")
    X = np.stack([g.ravel() for g in grids], axis=1)
    W = np.prod(np.stack([g.ravel() for g in wgrids], axis=1), axis=1)
    return X @ A.T, W


def gaussian_rule(K) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(P, d)`` and weights ``(P,)`` with ``Σ w f(z) ≈ E_{z~N(0,K)} f(z)``, ``K`` (d, d), d ≤ 4.

    Examples
    --------
    >>> z, w = gaussian_rule(np.array([[1.0, 0.5], [0.5, 2.0]]))
    >>> round(float(w @ (z[:, 0] * z[:, 1])), 12)
    0.5
    """
    K = np.atleast_2d(np.asarray(K, dtype=float))
    d = K.shape[0]
    if d == 1:
        return _rule_1d(float(K[0, 0]))
    if d == 2:
        return _rule_2d(K)
    if d in (3, 4):
        return _rule_nd(K)
    raise ValueError(f"gaussian_rule supports d ≤ 4, got d = {d}")


def expect(f, K: float) -> float:
    """``E_{z~N(0,K)} f(z)`` for one variance ``K`` (the half-range Hermite rule).

    Examples
    --------
    >>> round(expect(lambda z: np.maximum(z, 0.0), 2.0), 14) == round(math.sqrt(2.0 / (2 * math.pi)), 14)
    True
    """
    z, w = _rule_1d(K)
    return float(w @ np.asarray(f(z[:, 0]), dtype=float))

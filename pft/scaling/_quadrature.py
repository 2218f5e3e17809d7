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
inputs needs them): the polar rule for the first two coordinates, then each further coordinate
conditionally on the previous ones — a 1-D Gaussian whose kink is the single point 0 — by two
half-line rules from 0 whose weight carries the conditional mean as a smooth factor (or
Gauss–Hermite at the mean when the kink is more than 8.5 sd away). A tensor-product
Gauss–Hermite rule (about 1e-3 at a kink) is left only for singular kernels.

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

from pft.errors import InputError

__all__ = ["half_line_rule", "gaussian_rule", "gaussian_expect", "expect"]

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


def _polar(K: np.ndarray, n_angle: int, n_rad: int):
    """Whitened polar nodes for a non-singular 2 × 2 ``K``: unit-normal points ``v`` (Q, 2), base
    weights (Q,) of ``∫∫ (2π)⁻¹ e^{−|v|²/2} dv`` and the Cholesky factor ``L`` (z = L v). The
    angular rule is split where ``z₁ = 0`` or ``z₂ = 0`` (rays through the origin)."""
    k11, k12, k22 = float(K[0, 0]), float(K[0, 1]), float(K[1, 1])
    l11 = math.sqrt(k11)
    l21 = k12 / l11
    l22 = math.sqrt(k22 - l21 * l21)
    t2 = math.atan2(-l21, l22)
    cuts = np.sort(np.mod([math.pi / 2, -math.pi / 2, t2, t2 + math.pi], 2 * math.pi))
    edges = np.concatenate([cuts, [cuts[0] + 2 * math.pi]])
    x, wl = _legendre(n_angle)
    thetas, tw = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi - lo <= 1e-15:
            continue
        thetas.append(0.5 * (hi - lo) * x + 0.5 * (hi + lo))
        tw.append(0.5 * (hi - lo) * wl / (2 * math.pi))
    theta = np.concatenate(thetas)
    tw = np.concatenate(tw)
    r, rw = half_line_rule(n_rad, 1)  # ∫ r e^{−r²/2} dr = 1
    v = np.stack([np.outer(np.cos(theta), r).ravel(), np.outer(np.sin(theta), r).ravel()], axis=1)
    L = np.array([[l11, 0.0], [l21, l22]])
    return v, np.outer(tw, rw).ravel(), L


def _singular2(K: np.ndarray) -> bool:
    k11, k12, k22 = float(K[0, 0]), float(K[0, 1]), float(K[1, 1])
    return k11 <= 0.0 or k22 <= 0.0 or k11 * k22 - k12 * k12 <= 1e-14 * k11 * k22


def _rule_2d(K: np.ndarray, n_angle: int = N_ANGLE, n_rad: int = N_HALF) -> tuple[np.ndarray, np.ndarray]:
    if _singular2(K):
        # degenerate: z₂ is a multiple of z₁ (or one of them is 0); a one-dimensional rule
        k11, k12, k22 = float(K[0, 0]), float(K[0, 1]), float(K[1, 1])
        if k11 > 0:
            pts, wts = _rule_1d(k11)
            return np.column_stack([pts[:, 0], pts[:, 0] * (k12 / k11)]), wts
        pts, wts = _rule_1d(k22)
        return np.column_stack([np.zeros_like(pts[:, 0]), pts[:, 0]]), wts
    v, w, L = _polar(K, n_angle, n_rad)
    return v @ L.T, w


# nested rules for d = 3, 4
# (outer angular nodes per arc, outer radial nodes, inner half-line nodes per side) by dimension;
# converged to ~1e-12 (kinked) and ~1e-9 (worst smooth case seen, d = 4) against finer rules
N_NESTED = {3: (16, 48, 40), 4: (12, 40, 32)}
FAR = 8.5  # a kink this many conditional sd away from the mean is invisible (e^{-FAR²/2} ≈ 2e-16)
_BLOCK = 1 << 20  # points evaluated at once


def _kink_aware_1d(mu: np.ndarray, s: float, n_inner: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``t`` and weights, each (P, 2N), for ``E h(t)``, ``t ~ N(μ_p, s²)``, with ``h`` kinked at 0.

    Near the kink (|μ|/s ≤ FAR): two half-line rules from 0 outwards whose weight carries the
    shift as the smooth factor ``exp(±u m − m²/2)``, m = μ/s. Far from it: Gauss–Hermite at μ."""
    u, wu = half_line_rule(n_inner, 0)
    xg, wg = _hermite(2 * n_inner)
    m = mu / s
    near = np.abs(m) <= FAR
    mm = np.where(near, m, 0.0)[:, None]
    t_near = s * np.concatenate([u, -u])[None, :].repeat(mu.size, axis=0)
    uu = np.concatenate([u, -u])[None, :]
    w_near = np.concatenate([wu, wu])[None, :] / math.sqrt(2 * math.pi) * np.exp(uu * mm - 0.5 * mm * mm)
    t_far = mu[:, None] + s * xg[None, :]
    w_far = np.broadcast_to(wg[None, :], t_far.shape)
    nz = near[:, None]
    return np.where(nz, t_near, t_far), np.where(nz, w_near, w_far)


def _nested_expect(f, K: np.ndarray) -> float | None:
    """``E f(z)`` for d = 3, 4 by conditioning: an outer 2-D polar rule for (z₁, z₂) (split at
    the kink rays), then each further ``z_j`` given the previous ones — a 1-D Gaussian whose kink
    ``z_j = 0`` is a single point — by :func:`_kink_aware_1d`. Returns None for singular ``K``."""
    d = K.shape[0]
    if _singular2(K[:2, :2]):
        return None
    cond = []  # (coefficients on previous coordinates, conditional sd) for j = 2 … d−1
    for j in range(2, d):
        Kpp, Kjp = K[:j, :j], K[j, :j]
        try:
            b = np.linalg.solve(Kpp, Kjp)
        except np.linalg.LinAlgError:
            return None
        var = K[j, j] - Kjp @ b
        if not var > 1e-12 * K[j, j]:
            return None
        cond.append((b, math.sqrt(var)))
    n_angle, n_rad, n_inner = N_NESTED[d]
    v, wo, Lo = _polar(K[:2, :2], n_angle, n_rad)
    zo = v @ Lo.T
    Q = (2 * n_inner) ** (d - 2)
    step = max(1, _BLOCK // Q)
    total = 0.0
    for lo in range(0, zo.shape[0], step):
        pts, w = zo[lo:lo + step], wo[lo:lo + step]
        for b, sd in cond:
            t, wt = _kink_aware_1d(pts @ b, sd, n_inner)
            q = t.shape[1]
            pts = np.concatenate([np.repeat(pts, q, axis=0), t.reshape(-1, 1)], axis=1)
            w = (w[:, None] * wt).ravel()
        total = total + w @ np.asarray(f(pts), dtype=float)
    return total


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


def gaussian_expect(f, K):
    """``E_{z~N(0,K)} f(z)`` for ``K`` (d, d), d ≤ 4; ``f`` maps points (P, d) to values (P,) or
    (P, m) (then the result has shape (m,)).

    d ≤ 2: the kink-exact rules of :func:`gaussian_rule`. d = 3, 4: an outer polar rule for the
    first two coordinates and, for each further coordinate given the previous ones, a 1-D rule
    that splits at its kink ``z_j = 0`` (see :func:`_nested_expect`) — ~1e-12 for piecewise-linear
    activations, ~1e-9 or better for smooth ones. A tensor Gauss–Hermite rule only when ``K`` is singular.

    Examples
    --------
    >>> K = np.array([[1.0, 0.3, 0.2], [0.3, 1.0, 0.1], [0.2, 0.1, 1.0]])
    >>> round(float(gaussian_expect(lambda z: z[:, 0] ** 2 * z[:, 1] * z[:, 2], K)), 10)   # Isserlis
    0.22
    """
    K = np.atleast_2d(np.asarray(K, dtype=float))
    d = K.shape[0]
    if d in (3, 4):
        val = _nested_expect(f, K)
        if val is not None:
            return val
    z, w = gaussian_rule(K)
    return w @ np.asarray(f(z), dtype=float)


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
    raise InputError(f"`K` must be a (d, d) covariance with d ≤ 4; got shape {K.shape}.")


def expect(f, K: float) -> float:
    """``E_{z~N(0,K)} f(z)`` for one variance ``K`` (the half-range Hermite rule).

    Examples
    --------
    >>> round(expect(lambda z: np.maximum(z, 0.0), 2.0), 14) == round(math.sqrt(2.0 / (2 * math.pi)), 14)
    True
    """
    z, w = _rule_1d(K)
    return float(w @ np.asarray(f(z[:, 0]), dtype=float))

"""Numeric Edgeworth densities and Cornish–Fisher quantiles.

The terms (which cumulant products, with which exact coefficients) come from
:func:`pft.symbolic.edgeworth`; this module only evaluates them on arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from itertools import product
from math import prod

import numpy as np
import sympy
from scipy import special

from pft._validate import check_int
from pft.errors import InputError, NotPositiveDefiniteError, OutOfReachError
from pft.symbolic import edgeworth
from pft.symbolic.engine import edgeworth_terms, hermite, index_of, multinomial, multiplicities

__all__ = ["edgeworth_pdf", "edgeworth_logpdf", "cornish_fisher"]

_MAX_COMBOS = 2_000_000
_MAX_WORK = 200_000_000
_LOG_2PI = float(np.log(2 * np.pi))


def edgeworth_pdf(x, cumulants: Sequence, *, order: int) -> np.ndarray:
    """Edgeworth density at ``x`` from the cumulants of the variable (not standardized).

    Parameters
    ----------
    x : array_like
        One dimension: points of any shape. d dimensions: shape ``(N, d)`` or ``(d,)``.
    cumulants : sequence
        ``[κ_1, κ_2, κ_3, …]``: mean, variance, third cumulant... as scalars in one
        dimension; in d dimensions ``κ_r`` has shape ``(d,) * r`` (mean ``(d,)``, covariance
        ``(d, d)``, ...). At least ``order + 2`` of them; extra ones are ignored. Not mutated.
    order : int
        Keep the terms of size up to ``n^(-order/2)`` (see :func:`pft.symbolic.edgeworth`).

    Returns
    -------
    numpy.ndarray
        Density values: shape of ``x`` in one dimension, ``(N,)`` (or a scalar for a single
        point) in d dimensions. The truncated series can be negative in the tails.

    Raises
    ------
    pft.errors.NotPositiveDefiniteError
        If the variance / covariance is not positive definite.
    pft.errors.OutOfReachError
        If a multivariate series needs too many tensor terms (large d at high order).

    Notes
    -----
    With ``z = L⁻¹(x - κ_1)``, ``κ_2 = L Lᵀ`` and standardized cumulants ``κ̃_r = κ_r ×_i L⁻¹``
    on every index, ``f(x) = φ(z) [1 + Σ_terms c ∏ κ̃_{r_i} · He(z)] / det L``, the products
    contracted with tensor Hermite polynomials ``He_{i1…iR}(z) = ∏_j He_{m_j}(z_j)``.

    Examples
    --------
    Standardized sum of 10 Exponential(1) variables (cumulants ``(r-1)! n^(1-r/2)``):

    >>> import numpy as np
    >>> n = 10
    >>> kappa = [0.0, 1.0, 2 / n**0.5, 6 / n]
    >>> float(edgeworth_pdf(0.0, kappa, order=2))  # exact (Gamma law): 0.39563...
    0.3956...
    """
    z, std, logdet, _ = _standardize(x, cumulants, order)
    poly = _series(z, std, order)
    d = z.shape[-1] if std.multivariate else 1
    sq = np.sum(z**2, axis=-1) if std.multivariate else z**2
    out = np.exp(-0.5 * sq - 0.5 * d * _LOG_2PI - logdet) * poly
    return out[()] if out.ndim == 0 else out


def edgeworth_logpdf(x, cumulants: Sequence, *, order: int) -> np.ndarray:
    """``log`` of :func:`edgeworth_pdf`, computed without underflow in the tails.

    Where the truncated series is not positive the log is ``-inf`` (the expansion is not a
    density there); same arguments and shapes as :func:`edgeworth_pdf`.

    Examples
    --------
    >>> float(edgeworth_logpdf(0.0, [0.0, 1.0, 0.0], order=1))  # log φ(0)
    -0.9189...
    """
    z, std, logdet, _ = _standardize(x, cumulants, order)
    poly = _series(z, std, order)
    d = z.shape[-1] if std.multivariate else 1
    sq = np.sum(z**2, axis=-1) if std.multivariate else z**2
    logpoly = np.full(np.shape(poly), -np.inf)
    positive = poly > 0
    logpoly[positive] = np.log(poly[positive])
    out = -0.5 * sq - 0.5 * d * _LOG_2PI - logdet + logpoly
    return out[()] if out.ndim == 0 else out


def cornish_fisher(q, cumulants: Sequence, *, order: int) -> np.ndarray:
    """Cornish–Fisher quantiles: the ``q``-quantile of a variable with the given cumulants.

    Parameters
    ----------
    q : array_like
        Probabilities in (0, 1).
    cumulants : sequence of float
        ``[κ_1, κ_2, κ_3, …]`` of a scalar variable, at least ``order + 2`` of them.
    order : int
        Terms of size up to ``n^(-order/2)``, as in :func:`edgeworth_pdf`.

    Returns
    -------
    numpy.ndarray
        ``κ_1 + √κ_2 · w(z)`` with ``z = Φ⁻¹(q)`` and ``w`` the series of
        :attr:`pft.symbolic.EdgeworthExpansion.quantile`.

    Examples
    --------
    >>> float(cornish_fisher(0.5, [1.0, 4.0, 0.0, 0.0], order=2))
    1.0
    """
    qa = np.asarray(q, dtype=np.float64)
    if not np.all((qa > 0) & (qa < 1)):
        raise InputError(f"`q` must lie strictly between 0 and 1; got values in [{float(qa.min())!r}, {float(qa.max())!r}].")
    z0, std, _, (mean, scale) = _standardize(np.zeros(()), cumulants, order, allow_multivariate=False)
    z = special.ndtri(qa)
    w = np.zeros_like(z)
    for powers, zpoly in _quantile_terms(std.order):
        w = w + prod(std.scalars[r] ** p for r, p in powers) * np.polyval(zpoly, z)
    out = mean + scale * w
    return out[()] if out.ndim == 0 else out


@lru_cache(maxsize=None)
def _quantile_terms(order: int):
    """The Cornish–Fisher series as pairs (((r, power), …), z-polynomial coefficients)."""
    expr = edgeworth(order).quantile
    z = sympy.Symbol("z", real=True)
    kappas = [sympy.Symbol(f"kappa_{r}", real=True) for r in range(3, order + 3)]
    poly = sympy.Poly(sympy.expand(expr), *kappas)
    out = []
    for monom, coeff in poly.terms():
        zp = sympy.Poly(coeff, z)
        coeffs = np.array([float(c) for c in zp.all_coeffs()])
        powers = tuple((r, e) for r, e in zip(range(3, order + 3), monom) if e)
        out.append((powers, coeffs))
    return tuple(out)


class _Standardized:
    def __init__(self, order, multivariate, scalars=None, tensors=None):
        self.order = order
        self.multivariate = multivariate
        self.scalars = scalars
        self.tensors = tensors


def _standardize(x, cumulants, order, *, allow_multivariate=True):
    order = check_int(order, "order", minimum=0)
    if isinstance(cumulants, (str, bytes)) or not isinstance(cumulants, (Sequence, np.ndarray)):
        raise InputError(f"`cumulants` must be a sequence [mean, variance, κ3, ...]; got {type(cumulants).__name__}.")
    need = order + 2
    if len(cumulants) < need:
        raise InputError(
            f"`cumulants` must have at least {need} entries (κ_1 … κ_{need}) for order {order}; "
            f"got {len(cumulants)}."
        )
    first = np.asarray(cumulants[0])
    if first.ndim == 0:
        vals = []
        for r in range(need):
            c = np.asarray(cumulants[r], dtype=np.float64)
            if c.ndim != 0 or not np.isfinite(c):
                raise InputError(f"`cumulants[{r}]` must be a finite scalar for a 1-D variable; got {cumulants[r]!r}.")
            vals.append(float(c))
        if not vals[1] > 0:
            raise NotPositiveDefiniteError(f"`cumulants[1]` (the variance) must be > 0; got {vals[1]!r}.")
        scale = vals[1] ** 0.5
        scalars = {r: vals[r - 1] / scale**r for r in range(3, need + 1)}
        z = (np.asarray(x, dtype=np.float64) - vals[0]) / scale
        return z, _Standardized(order, False, scalars=scalars), np.log(scale), (vals[0], scale)
    if not allow_multivariate:
        raise InputError(f"`cumulants[0]` must be a scalar here (univariate only); got shape {first.shape}.")
    if first.ndim != 1:
        raise InputError(f"`cumulants[0]` (the mean) must be a scalar or a (d,) vector; got shape {first.shape}.")
    d = first.shape[0]
    _check_reach(order, d)
    tensors = []
    for r in range(1, need + 1):
        c = np.array(cumulants[r - 1], dtype=np.float64)  # a copy: inputs are never mutated
        if c.shape != (d,) * r:
            raise InputError(f"`cumulants[{r - 1}]` (order {r}) must have shape {(d,) * r}; got shape {c.shape}.")
        if not np.all(np.isfinite(c)):
            raise InputError(f"`cumulants[{r - 1}]` must hold finite numbers; got {int(np.sum(~np.isfinite(c)))} NaN/inf entries.")
        tensors.append(c)
    cov = tensors[1]
    if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12 * np.abs(cov).max()):
        raise InputError(
            "`cumulants[1]` (the covariance) must be symmetric; "
            f"got a largest asymmetry |C - Cᵀ| of {float(np.abs(cov - cov.T).max())!r}."
        )
    evals = np.linalg.eigvalsh(cov)
    if evals[0] <= evals[-1] * d * np.finfo(np.float64).eps or evals[0] <= 0:
        raise NotPositiveDefiniteError(
            "`cumulants[1]` (the covariance) must be positive definite; "
            f"got smallest eigenvalues {evals[:3].tolist()!r}."
        )
    chol = np.linalg.cholesky(cov)
    inv = np.linalg.inv(chol)
    xa = np.asarray(x, dtype=np.float64)
    if xa.shape[-1:] != (d,) or xa.ndim > 2:
        raise InputError(f"`x` must have shape (N, {d}) or ({d},) for a {d}-dimensional variable; got shape {xa.shape}.")
    z = (xa - tensors[0]) @ inv.T
    std = {}
    for r in range(3, need + 1):
        t = tensors[r - 1]
        for axis in range(r):
            t = np.moveaxis(np.tensordot(inv, t, axes=([1], [axis])), 0, axis)
        std[r] = t
    logdet = float(np.sum(np.log(np.diag(chol))))
    return z, _Standardized(order, True, tensors=std), logdet, None


def _series(z: np.ndarray, std: _Standardized, order: int) -> np.ndarray:
    """``1 + Σ_terms c ∏ κ̃ He`` at the standardized points ``z``."""
    terms = edgeworth_terms(order)
    if not std.multivariate:
        poly = np.ones_like(z)
        herm = {}
        for t in terms:
            if t.degree not in herm:
                herm[t.degree] = hermite(t.degree, z)
            poly = poly + float(t.coefficient) * prod(std.scalars[r] for r in t.ranks) * herm[t.degree]
        return poly
    d = z.shape[-1]
    points = z.reshape(-1, d)
    weights: dict[tuple[int, ...], float] = {}
    _check_reach(order, d)
    for t in terms:
        per_factor = []
        for r in t.ranks:
            tensor = std.tensors[r]
            per_factor.append([(m, multinomial(m) * tensor[index_of(m)]) for m in multiplicities(r, d)])
        for combo in product(*per_factor):
            w = float(t.coefficient) * prod(v for _, v in combo)
            total = tuple(map(sum, zip(*(m for m, _ in combo))))
            weights[total] = weights.get(total, 0.0) + w
    if not weights:
        out = np.ones(points.shape[0])
        return out.reshape(z.shape[:-1])
    maxdeg = max(max(m) for m in weights)
    # herm[k, i, j] = He_k(z_ij)
    herm = np.empty((maxdeg + 1, *points.shape))
    herm[0] = 1.0
    if maxdeg >= 1:
        herm[1] = points
    for k in range(1, maxdeg):
        herm[k + 1] = points * herm[k] - k * herm[k - 1]
    keys = np.array(list(weights), dtype=np.intp)  # (K, d)
    w = np.array(list(weights.values()))
    if keys.shape[0] * points.shape[0] * d > _MAX_WORK:
        chunk = max(1, _MAX_WORK // (points.shape[0] * d))
    else:
        chunk = keys.shape[0]
    out = np.ones(points.shape[0])
    cols = np.arange(d)
    for start in range(0, keys.shape[0], chunk):
        kk = keys[start : start + chunk]  # (C, d)
        vals = herm[kk, :, cols]  # (C, d, N): He_{kk[c, j]}(z[:, j])
        out = out + np.einsum("c,cn->n", w[start : start + chunk], np.prod(vals, axis=1))
    return out.reshape(z.shape[:-1])


def _check_reach(order: int, d: int) -> None:
    combos = sum(prod(_count(r, d) for r in t.ranks) for t in edgeworth_terms(order))
    if combos > _MAX_COMBOS:
        raise OutOfReachError(
            f"the Edgeworth series at order {order} in d = {d} has {combos} tensor terms "
            f"(limit {_MAX_COMBOS}); lower the order or the dimension"
        )


def _count(r: int, d: int) -> int:
    from math import comb

    return comb(r + d - 1, d - 1)

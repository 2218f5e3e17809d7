"""Exact perturbative series of the zero-dimensional theory, straight from Gaussian moments.

This is the truth the diagram enumeration is tested against, so it shares no code with it: it
expands ``exp(-Σ g_k x^k / k!)`` term by term, integrates each power of ``x`` against the unit
Gaussian (``E[x^{2m}] = (2m-1)!!``), and then takes logarithms / cumulants of truncated
multivariate power series with exact rational coefficients.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from itertools import product
from math import comb, factorial
from numbers import Integral

import sympy

from pft._validate import check_int
from pft.errors import InputError

__all__ = ["zero_dimensional_series"]


def _gaussian_moment(p: int) -> int:
    """``E[x^p]`` for a standard normal ``x``: ``(p-1)!!`` for even ``p``, else 0."""
    if p % 2:
        return 0
    out = 1
    for j in range(p - 1, 0, -2):
        out *= j
    return out


# Truncated series: dict exponent-tuple -> Fraction, total degree <= order.
def _mul(a, b, order):
    out: dict = {}
    for ea, ca in a.items():
        da = sum(ea)
        for eb, cb in b.items():
            if da + sum(eb) > order:
                continue
            e = tuple(x + y for x, y in zip(ea, eb))
            out[e] = out.get(e, 0) + ca * cb
    return {e: c for e, c in out.items() if c}


def _add(a, b, scale=1):
    out = dict(a)
    for e, c in b.items():
        out[e] = out.get(e, 0) + scale * c
    return {e: c for e, c in out.items() if c}


def _log1p(u, order, nvar):
    """log(1 + u) for a series ``u`` without constant term."""
    out: dict = {}
    power = {(0,) * nvar: Fraction(1)}
    for j in range(1, order + 1):
        power = _mul(power, u, order)
        if not power:
            break
        out = _add(out, power, Fraction((-1) ** (j + 1), j))
    return out


def _inverse(a, order, nvar):
    """1 / a for a series with constant term 1."""
    zero = (0,) * nvar
    # An internal invariant, not an input check: the only caller passes the moment series,
    # whose constant term is E[1] = 1 by construction, so users cannot reach this line.
    if a.get(zero) != 1:  # pragma: no cover - internal invariant
        raise AssertionError(f"_inverse needs a series with constant term 1; got {a.get(zero)!r}.")
    u = {e: -c for e, c in a.items() if e != zero}
    out = {zero: Fraction(1)}
    power = {zero: Fraction(1)}
    for _ in range(order):
        power = _mul(power, u, order)
        if not power:
            break
        out = _add(out, power)
    return out


def _moment_series(ks, order, n):
    """``E_0[x^n exp(-Σ g_k x^k/k!)]`` truncated at total degree ``order`` in the couplings."""
    out = {}
    for m in product(range(order + 1), repeat=len(ks)):
        if sum(m) > order:
            continue
        p = n + sum(k * mk for k, mk in zip(ks, m))
        mom = _gaussian_moment(p)
        if not mom:
            continue
        denom = 1
        for k, mk in zip(ks, m):
            denom *= factorial(k) ** mk * factorial(mk)
        out[m] = Fraction((-1) ** sum(m) * mom, denom)
    return out


def _series(ks, order, n_external, connected):
    nvar = len(ks)
    zero = (0,) * nvar
    if n_external == 0:
        z = _moment_series(ks, order, 0)
        if not connected:
            return z
        return _log1p({e: c for e, c in z.items() if e != zero}, order, nvar)
    if not connected:
        return _moment_series(ks, order, n_external)
    inv_z = _inverse(_moment_series(ks, order, 0), order, nvar)
    m = [None] + [_mul(_moment_series(ks, order, j), inv_z, order) for j in range(1, n_external + 1)]
    kappa = [None]
    for r in range(1, n_external + 1):
        acc = dict(m[r])
        for i in range(1, r):
            acc = _add(acc, _mul(kappa[i], m[r - i], order), -comb(r - 1, i - 1))
        kappa.append(acc)
    return kappa[n_external]


def zero_dimensional_series(couplings, order, *, n_external=0, connected=True):
    r"""Exact series of the zero-dimensional theory in its couplings.

    The theory is ``Z = ∫ dx/√(2π) exp(-x²/2 - Σ_k g_k x^k / k!)``.

    Parameters
    ----------
    couplings : mapping of int to sympy expression, or sequence of int
        Vertex degree ``k`` -> coupling ``g_k``. A plain sequence of degrees uses the symbols
        ``g3, g4, ...``.
    order : int
        Keep every monomial of total degree <= ``order`` in the couplings (diagrams with at most
        ``order`` vertices).
    n_external : int
        0 for the vacuum (``log Z``), ``n`` for the ``n``-point function.
    connected : bool
        True: ``log Z`` or the cumulant (connected moment) ``⟨x^n⟩_c``. False: ``Z`` itself or
        ``E_0[x^n exp(-Σ g_k x^k/k!)]`` (the moment times ``Z``: every diagram, vacuum bubbles
        included).

    Returns
    -------
    sympy.Expr
        A polynomial in the couplings with exact rational coefficients.

    Notes
    -----
    Expand the exponential, integrate with ``E[x^{2m}] = (2m-1)!!``, then take the logarithm
    (vacuum) or the cumulants ``κ_r = m_r - Σ_{i<r} C(r-1, i-1) κ_i m_{r-i}`` of the normalised
    moments ``m_r``, all as truncated power series with Fraction coefficients. By Wick's theorem the
    coefficient of ``Π g_k^{m_k}`` equals ``Σ Π(-1)^{m_k} / |Aut(Γ)|`` over the matching
    (connected) diagrams — the identity the diagram enumeration is tested against.

    References
    ----------
    .. [1] J. Zinn-Justin, *Quantum Field Theory and Critical Phenomena*, ch. 1-2 (the
       zero-dimensional theory and its Feynman diagrams).

    Examples
    --------
    >>> import sympy
    >>> g = sympy.Symbol("g")
    >>> zero_dimensional_series({4: g}, 3)
    -11*g**3/96 + g**2/12 - g/8
    >>> zero_dimensional_series([3], 2, n_external=2)
    g3**2 + 1
    """
    if isinstance(couplings, Mapping):
        items = list(couplings.items())
    else:
        try:
            items = [(k, sympy.Symbol(f"g{k}")) for k in couplings]
        except TypeError:
            raise InputError(
                f"`couplings` must map degree -> coupling or list degrees; got {couplings!r}."
            ) from None
    for k, _ in items:
        if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
            raise InputError(f"`couplings` keys must be vertex degrees (integers >= 1); got {k!r}.")
    if len({k for k, _ in items}) != len(items):
        raise InputError(f"`couplings` must name each degree once; got degrees {[k for k, _ in items]!r}.")
    order = check_int(order, "order", minimum=0)
    n_external = check_int(n_external, "n_external", minimum=0)
    items.sort(key=lambda t: t[0])
    ks = [int(k) for k, _ in items]
    syms = [sympy.sympify(c) for _, c in items]
    coeffs = _series(ks, int(order), int(n_external), bool(connected))
    terms = []
    for e, c in sorted(coeffs.items()):
        mono = sympy.Rational(c.numerator, c.denominator)
        for s, p in zip(syms, e):
            mono *= s**p
        terms.append(mono)
    return sympy.Add(*terms)

"""Wick (Isserlis) contractions of a centred Gaussian vector.

``E[x_i1 ⋯ x_ik] = Σ_{pairings P} ∏_{(a,b)∈P} C[i_a, i_b]`` for ``x ~ N(0, C)``; zero for odd k
(Isserlis 1918). :func:`gaussian_moment` evaluates the sum by recursion on the first index
with the remaining indices memoised as a multiset, so repeated indices cost little.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from numbers import Number

import numpy as np
import sympy

from pft._validate import check_int
from pft.errors import InputError, OutOfReachError

__all__ = ["wick_pairings", "gaussian_moment"]

_MAX_PAIRINGS = 2_000_000


def wick_pairings(k: int) -> list[tuple[tuple[int, int], ...]]:
    """All perfect matchings of ``0 … k-1``: ``(k-1)!!`` of them for even k, none for odd k.

    Parameters
    ----------
    k : int
        Number of points, ``k >= 0``.

    Returns
    -------
    list of tuple of (int, int)
        Each pairing as sorted pairs ``(a, b)`` with ``a < b``, in lexicographic order.

    Raises
    ------
    pft.errors.OutOfReachError
        When ``(k-1)!!`` exceeds two million (k > 18): use :func:`gaussian_moment` instead.

    Examples
    --------
    >>> wick_pairings(4)
    [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]
    >>> len(wick_pairings(8)), wick_pairings(3)
    (105, [])
    """
    k = check_int(k, "k", minimum=0)
    if k % 2:
        return []
    count = 1
    for j in range(k - 1, 0, -2):
        count *= j
    if count > _MAX_PAIRINGS:
        raise OutOfReachError(
            f"wick_pairings({k}) would list {count} pairings (more than {_MAX_PAIRINGS}); "
            "gaussian_moment sums them without listing them"
        )
    return list(_pairings(tuple(range(k))))


def _pairings(points: tuple[int, ...]):
    if not points:
        yield ()
        return
    first, rest = points[0], points[1:]
    for j, partner in enumerate(rest):
        remaining = rest[:j] + rest[j + 1 :]
        for tail in _pairings(remaining):
            yield ((first, partner), *tail)


def gaussian_moment(cov, indices: Sequence[int]):
    """``E[x_i1 ⋯ x_ik]`` for a centred Gaussian ``x ~ N(0, cov)`` (Isserlis' theorem).

    Parameters
    ----------
    cov : (d, d) array_like, sympy.Matrix, or scalar
        Covariance: numeric (the result is a float), exact (ints, Fractions: the result is
        exact) or symbolic (a sympy Matrix or sympy entries: the result is a sympy expression).
        A scalar is a 1×1 covariance.
    indices : sequence of int
        The indices ``i_1 … i_k``, each in ``0 … d-1``; repetitions allowed.

    Returns
    -------
    float, Fraction, int or sympy.Expr

    Notes
    -----
    ``E[x_i1 ⋯ x_ik] = Σ_P ∏_{(a,b)∈P} cov[i_a, i_b]`` over the ``(k-1)!!`` pairings ``P``.
    The sum is evaluated recursively, ``E[x_i1 x_R] = Σ_{j∈R} cov[i1, j] E[x_{R∖j}]``, with the
    remaining indices memoised as a sorted multiset.

    References
    ----------
    .. [1] L. Isserlis, "On a formula for the product-moment coefficient of any order of a
       normal frequency distribution in any number of variables", Biometrika 12 (1918).

    Examples
    --------
    >>> import sympy
    >>> a, b, c = sympy.symbols("a b c")
    >>> gaussian_moment(sympy.Matrix([[a, c], [c, b]]), [0, 0, 1, 1])
    a*b + 2*c**2
    >>> gaussian_moment(2.0, [0] * 6)  # 15 σ⁶ with σ² = 2
    120.0
    """
    table = _covariance_table(cov)
    d = len(table)
    asym = [(i, j) for i in range(d) for j in range(i) if not _same(table[i][j], table[j][i])]
    if asym:
        i, j = asym[0]
        raise InputError(f"`cov` must be symmetric; got cov[{i}, {j}] = {table[i][j]!r} != cov[{j}, {i}] = {table[j][i]!r}.")
    try:
        idx = [int(i) for i in indices]
    except (TypeError, ValueError):
        raise InputError(f"`indices` must be a sequence of integers; got {indices!r}.") from None
    if any(isinstance(i, (bool, float)) for i in indices):
        raise InputError(f"`indices` must be integers (not bool or float); got {list(indices)!r}.")
    bad = [i for i in idx if not 0 <= i < d]
    if bad:
        raise InputError(f"`indices` must lie in 0..{d - 1} for a {d}x{d} covariance; got {bad!r}.")
    floating = all(isinstance(v, float) for row in table for v in row)
    if len(idx) % 2:
        return sympy.Integer(0) if _symbolic(table) else (0.0 if floating else 0)

    @lru_cache(maxsize=None)
    def moment(rest: tuple[int, ...]):
        if not rest:
            return 1
        first, tail = rest[0], rest[1:]
        total = 0
        for j in range(len(tail)):
            if j and tail[j] == tail[j - 1]:
                continue  # same index as the previous partner: counted by multiplicity below
            mult = 1
            while j + mult < len(tail) and tail[j + mult] == tail[j]:
                mult += 1
            c = table[first][tail[j]]
            if c == 0:
                continue
            total = total + mult * c * moment(tail[:j] + tail[j + 1 :])
        return total

    value = moment(tuple(sorted(idx)))
    if _symbolic(table):
        return sympy.expand(sympy.sympify(value))
    if floating:
        return float(value)
    return value


def _same(a, b) -> bool:
    if isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic):
        return sympy.expand(a - b) == 0
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1e-300)
    return a == b


def _symbolic(table) -> bool:
    return any(isinstance(v, sympy.Basic) for row in table for v in row)


def _covariance_table(cov) -> list[list]:
    if isinstance(cov, sympy.MatrixBase):
        if cov.rows != cov.cols:
            raise InputError(f"`cov` must be square; got a {cov.rows}x{cov.cols} sympy Matrix.")
        return [[cov[i, j] for j in range(cov.cols)] for i in range(cov.rows)]
    if isinstance(cov, (Number, sympy.Basic)) and not isinstance(cov, bool):
        cov = [[cov]]
    arr = np.asarray(cov)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InputError(f"`cov` must be a square (d, d) matrix; got shape {arr.shape}.")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise InputError(f"`cov` must hold finite numbers; got {int(np.sum(~np.isfinite(arr)))} NaN/inf entries.")
        return [[float(v) for v in row] for row in arr]
    if arr.dtype.kind in "iu":
        return [[int(v) for v in row] for row in arr]
    if arr.dtype.kind == "O":
        for v in arr.flat:
            if not isinstance(v, (Number, sympy.Basic)) or isinstance(v, bool):
                raise InputError(f"`cov` must hold numbers or sympy expressions; got {v!r}.")
        return [list(row) for row in arr]
    raise InputError(f"`cov` must hold numbers; got dtype {arr.dtype}.")

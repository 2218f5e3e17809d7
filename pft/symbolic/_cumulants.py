"""Moments and cumulants of a random vector, converted through set partitions.

For indices ``i_1 … i_r`` (repetitions allowed) the raw moment and the cumulant tensors are
related by sums over the set partitions ``π`` of the positions ``{1, …, r}``:

    m(i_1…i_r) = Σ_π ∏_{B∈π} κ(i_B)
    κ(i_1…i_r) = Σ_π (-1)^(|π|-1) (|π|-1)! ∏_{B∈π} m(i_B)

(McCullagh, *Tensor Methods in Statistics*, 1987, §2.3). Entries stay exact: integer,
:class:`fractions.Fraction` and sympy inputs are carried in object arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from math import factorial
from numbers import Number

import numpy as np
import sympy

from pft.errors import InputError

__all__ = ["moments_to_cumulants", "cumulants_to_moments", "set_partitions"]


def set_partitions(items: Sequence) -> Iterator[list[list]]:
    """Every set partition of ``items``, each a list of blocks (lists); each block keeps the
    order of ``items``.

    Examples
    --------
    >>> list(set_partitions([0, 1, 2]))
    [[[0], [1], [2]], [[0, 1], [2]], [[1], [0, 2]], [[0], [1, 2]], [[0, 1, 2]]]
    >>> sum(1 for _ in set_partitions(range(6)))  # Bell number B_6
    203
    """
    items = list(items)
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in set_partitions(rest):
        yield [[first], *smaller]
        for i in range(len(smaller)):
            yield [*smaller[:i], [first, *smaller[i]], *smaller[i + 1 :]]


def moments_to_cumulants(moments: Sequence) -> list:
    """Cumulants ``κ_1 … κ_R`` from raw moments ``m_1 … m_R`` (about zero).

    Parameters
    ----------
    moments : sequence of length R
        ``moments[r-1]`` is the r-th raw moment: a scalar for one variable, or an array of
        shape ``(d,) * r`` with ``moments[r-1][i1, …, ir] = E[x_i1 ⋯ x_ir]``. Integers,
        fractions and sympy expressions stay exact.

    Returns
    -------
    list
        ``[κ_1, …, κ_R]`` in the same form (scalars, or arrays of shape ``(d,) * r``).

    Examples
    --------
    Exponential(1) has moments ``r!`` and cumulants ``(r-1)!``:

    >>> moments_to_cumulants([1, 2, 6, 24])
    [1, 1, 2, 6]
    """
    return _convert(moments, "moments", to_cumulants=True)


def cumulants_to_moments(cumulants: Sequence) -> list:
    """Raw moments ``m_1 … m_R`` from cumulants ``κ_1 … κ_R``; the inverse of
    :func:`moments_to_cumulants`, same layout.

    Examples
    --------
    A standard normal: only ``κ_2 = 1``, moments ``0, 1, 0, 3, 0, 15``.

    >>> cumulants_to_moments([0, 1, 0, 0, 0, 0])
    [0, 1, 0, 3, 0, 15]
    """
    return _convert(cumulants, "cumulants", to_cumulants=False)


def _convert(tensors: Sequence, name: str, *, to_cumulants: bool) -> list:
    arrays, scalar, exact = _validate(tensors, name)
    out = []
    for r in range(1, len(arrays) + 1):
        total = None
        for partition in set_partitions(range(r)):
            q = len(partition)
            coef = (-1) ** (q - 1) * factorial(q - 1) if to_cumulants else 1
            term = _block_product(arrays, partition)
            term = term * coef
            total = term if total is None else total + term
        out.append(total)
    if exact:
        out = [_tidy(a) for a in out]
    if scalar:
        return [a.reshape(-1)[0] for a in out]
    return out


def _block_product(arrays: list[np.ndarray], partition: list[list[int]]) -> np.ndarray:
    """Outer product of the block tensors, axes put back in position order."""
    tensor = None
    order: list[int] = []
    for block in partition:
        factor = arrays[len(block) - 1]
        tensor = factor if tensor is None else np.multiply.outer(tensor, factor)
        order.extend(block)
    return np.transpose(tensor, np.argsort(order))


def _tidy(array: np.ndarray) -> np.ndarray:
    out = np.empty(array.shape, dtype=object)
    for idx, value in np.ndenumerate(array):
        out[idx] = sympy.expand(value) if isinstance(value, sympy.Basic) else value
    return out


def _validate(tensors: Sequence, name: str) -> tuple[list[np.ndarray], bool, bool]:
    if isinstance(tensors, (str, bytes)) or not isinstance(tensors, (Sequence, np.ndarray)):
        raise InputError(f"`{name}` must be a sequence [order 1, order 2, ...]; got {type(tensors).__name__}.")
    if len(tensors) == 0:
        raise InputError(f"`{name}` must hold at least the first-order tensor; got an empty sequence.")
    scalar = all(np.ndim(t) == 0 for t in tensors)
    raw = [np.asarray(t) for t in tensors]
    exact = any(a.dtype.kind in "iuO" for a in raw)
    if scalar:
        raw = [a.reshape((1,) * r) for r, a in enumerate(raw, start=1)]
    d = raw[0].shape[0] if raw[0].ndim == 1 else None
    arrays = []
    for r, a in enumerate(raw, start=1):
        if a.ndim != r or (d is not None and a.shape != (d,) * r):
            expected = f"shape {(d,) * r}" if d is not None else f"{r} dimensions"
            raise InputError(f"`{name}[{r - 1}]` (order {r}) must have {expected}; got shape {a.shape}.")
        if a.dtype.kind not in "iufO":
            raise InputError(f"`{name}[{r - 1}]` must hold numbers; got dtype {a.dtype}.")
        if exact:
            b = np.empty(a.shape, dtype=object)
            for idx, v in np.ndenumerate(a):
                b[idx] = int(v) if isinstance(v, (np.integer,)) else (float(v) if isinstance(v, np.floating) else v)
                if not isinstance(b[idx], (Number, sympy.Basic)):
                    raise InputError(f"`{name}[{r - 1}]` must hold numbers; got {b[idx]!r}.")
            a = b
        else:
            a = a.astype(np.float64, copy=True)
        arrays.append(a)
    return arrays, scalar, exact

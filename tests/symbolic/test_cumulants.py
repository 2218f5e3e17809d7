"""Moments <-> cumulants through set partitions: known laws, Isserlis, exact round trips."""

from fractions import Fraction
from math import factorial

import numpy as np
import pytest
import sympy

from pft.errors import InputError
from pft.symbolic import cumulants_to_moments, gaussian_moment, moments_to_cumulants
from pft.symbolic._cumulants import set_partitions


def test_bell_numbers():
    # Bell numbers B_0..B_7 (OEIS A000110)
    assert [sum(1 for _ in set_partitions(range(n))) for n in range(8)] == [1, 1, 2, 5, 15, 52, 203, 877]


def test_exponential_and_poisson_laws():
    # Exponential(1): m_r = r!, κ_r = (r-1)!
    assert moments_to_cumulants([factorial(r) for r in range(1, 8)]) == [factorial(r - 1) for r in range(1, 8)]
    # Poisson(λ): all cumulants λ, moments are Touchard polynomials Σ_k S(r, k) λ^k
    lam = sympy.Symbol("lambda", positive=True)
    moments = cumulants_to_moments([lam] * 5)
    touchard = [sum(sympy.functions.combinatorial.numbers.stirling(r, k) * lam**k for k in range(r + 1)) for r in range(1, 6)]
    assert [sympy.expand(m - t) for m, t in zip(moments, touchard)] == [0] * 5


def test_gaussian_cumulants_give_isserlis_moments():
    # Independent path: partitions with only pair blocks vs gaussian_moment's recursion.
    cov = np.array([[2, 1, 0], [1, 3, -1], [0, -1, 1]])
    cumulants = [np.zeros(3, dtype=int), cov] + [np.zeros((3,) * r, dtype=int) for r in (3, 4, 5, 6)]
    moments = cumulants_to_moments(cumulants)
    for r, m in enumerate(moments, start=1):
        for idx in np.ndindex(*m.shape):
            assert m[idx] == gaussian_moment(cov, list(idx)), (r, idx)


def test_mean_shifts_the_second_moment():
    mu = np.array([0.5, -1.0])
    cov = np.array([[1.0, 0.3], [0.3, 2.0]])
    m1, m2 = cumulants_to_moments([mu, cov])
    np.testing.assert_allclose(m2, cov + np.outer(mu, mu), rtol=1e-14)
    np.testing.assert_allclose(m1, mu)


def _random_symmetric(rng, d, r):
    """A symmetric tensor of exact Fractions."""
    base = {}
    t = np.empty((d,) * r, dtype=object)
    for idx in np.ndindex(*t.shape):
        key = tuple(sorted(idx))
        if key not in base:
            base[key] = Fraction(int(rng.integers(-9, 10)), int(rng.integers(1, 7)))
        t[idx] = base[key]
    return t


@pytest.mark.parametrize("d", [1, 2, 3])
def test_round_trip_is_exact(d):
    rng = np.random.default_rng(d)
    moments = [_random_symmetric(rng, d, r) for r in range(1, 6)]
    back = cumulants_to_moments(moments_to_cumulants(moments))
    for a, b in zip(moments, back):
        assert a.shape == b.shape
        assert all(x == y for x, y in zip(a.flat, b.flat))
        assert all(isinstance(y, (Fraction, int)) for y in b.flat)


def test_symbolic_round_trip_univariate():
    k = sympy.symbols("k1:7")
    assert cumulants_to_moments(k)[3] == sympy.expand(k[3] + 4 * k[2] * k[0] + 3 * k[1] ** 2 + 6 * k[1] * k[0] ** 2 + k[0] ** 4)
    assert [sympy.expand(a - b) for a, b in zip(moments_to_cumulants(cumulants_to_moments(k)), k)] == [0] * 6


def test_float_round_trip_and_inputs_not_mutated():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 2)) ** 2
    moments = [np.einsum("ni->i", x) / 1000, np.einsum("ni,nj->ij", x, x) / 1000, np.einsum("ni,nj,nk->ijk", x, x, x) / 1000]
    copies = [m.copy() for m in moments]
    cumulants = moments_to_cumulants(moments)
    np.testing.assert_allclose(cumulants[1], np.cov(x.T, bias=True), rtol=1e-10)
    back = cumulants_to_moments(cumulants)
    for a, b, c in zip(moments, back, copies):
        np.testing.assert_allclose(a, b, rtol=1e-12)
        np.testing.assert_array_equal(a, c)


def test_bad_shapes_are_refused():
    with pytest.raises(InputError, match=r"^`moments\[1\]` \(order 2\) must have shape \(2, 2\); got shape \(2, 3\)\.$"):
        moments_to_cumulants([np.zeros(2), np.zeros((2, 3))])
    with pytest.raises(InputError, match=r"^`cumulants` must hold at least the first-order tensor; got an empty sequence\.$"):
        cumulants_to_moments([])
    with pytest.raises(InputError, match=r"^`moments` must be a sequence \[order 1, order 2, \.\.\.\]; got str\.$"):
        moments_to_cumulants("123")

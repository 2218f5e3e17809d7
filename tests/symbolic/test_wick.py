"""Wick pairings and Isserlis moments against brute force and Monte Carlo."""

from fractions import Fraction
from itertools import permutations

import numpy as np
import pytest
import sympy

from pft.errors import InputError, OutOfReachError
from pft.symbolic import gaussian_moment, wick_pairings


def _brute_force_pairings(k):
    """Pairings as the distinct canonical forms of all k! orderings (independent of the code)."""
    seen = set()
    for perm in permutations(range(k)):
        pairs = tuple(sorted(tuple(sorted(perm[i : i + 2])) for i in range(0, k, 2)))
        seen.add(pairs)
    return seen


@pytest.mark.parametrize("k", [0, 2, 4, 6, 8])
def test_pairings_are_all_perfect_matchings(k):
    got = wick_pairings(k)
    assert len(got) == len(set(got))
    assert set(got) == _brute_force_pairings(k)
    double_factorial = int(np.prod(np.arange(k - 1, 0, -2))) if k else 1
    assert len(got) == double_factorial


def test_odd_pairings_are_empty_and_bad_k_refused():
    assert wick_pairings(5) == []
    with pytest.raises(InputError, match="`k`"):
        wick_pairings(-2)
    with pytest.raises(InputError, match="`k`"):
        wick_pairings(2.0)
    with pytest.raises(OutOfReachError):
        wick_pairings(20)


def _pairing_sum(cov, idx):
    """Naive twin: the sum over the listed pairings, no memoisation."""
    total = 0
    for pairing in wick_pairings(len(idx)):
        term = 1
        for a, b in pairing:
            term = term * cov[idx[a]][idx[b]]
        total = total + term
    return total


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.5 * np.eye(d)


@pytest.mark.parametrize("seed", range(5))
def test_moment_equals_brute_force_pairing_sum(seed):
    rng = np.random.default_rng(seed)
    cov = _random_cov(rng, 3)
    for k in (2, 4, 6, 8):
        idx = list(rng.integers(0, 3, size=k))
        assert gaussian_moment(cov, idx) == pytest.approx(_pairing_sum(cov, idx), rel=1e-12)


def test_exact_covariance_stays_exact():
    cov = [[Fraction(2), Fraction(1, 3)], [Fraction(1, 3), Fraction(1, 2)]]
    idx = [0, 0, 1, 1, 1, 1]
    got = gaussian_moment(cov, idx)
    assert isinstance(got, Fraction)
    assert got == _pairing_sum(cov, idx)


def test_symbolic_variance_gives_double_factorials():
    s = sympy.Symbol("s", positive=True)
    for m in range(6):
        # E[x^{2m}] = (2m-1)!! s^m for x ~ N(0, s)
        assert gaussian_moment(sympy.Matrix([[s]]), [0] * (2 * m)) == sympy.factorial2(2 * m - 1) * s**m
    assert gaussian_moment(sympy.Matrix([[s]]), [0] * 3) == 0


def test_large_repeated_moment_uses_no_pairing_list():
    # E[x^30] = 29!! for a standard normal: 29!! = 6190283353629375 pairings, never listed.
    assert gaussian_moment([[1]], [0] * 30) == 6190283353629375


def test_moment_matches_monte_carlo_within_error_bar():
    rng = np.random.default_rng(1234)
    cov = _random_cov(rng, 3)
    x = rng.multivariate_normal(np.zeros(3), cov, size=400_000)
    for idx in ([0, 1], [0, 0, 1, 2], [2, 2, 2, 2], [0, 1, 1, 2, 2, 2]):
        prod = np.prod(x[:, idx], axis=1)
        est, se = prod.mean(), prod.std(ddof=1) / np.sqrt(len(prod))
        truth = gaussian_moment(cov, idx)
        assert abs(est - truth) < 4 * se, (idx, est, truth, se)


def test_bad_inputs_name_the_argument():
    with pytest.raises(InputError, match=r"^`cov` must be a square \(d, d\) matrix; got shape \(2, 3\)\.$"):
        gaussian_moment(np.ones((2, 3)), [0, 1])
    with pytest.raises(InputError, match=r"^`cov` must be symmetric; got cov\[1, 0\] = 0\.2 != cov\[0, 1\] = 0\.5\.$"):
        gaussian_moment(np.array([[1.0, 0.5], [0.2, 1.0]]), [0, 1])
    with pytest.raises(InputError, match=r"^`cov` must hold finite numbers; got 1 NaN/inf entries\.$"):
        gaussian_moment(np.array([[1.0, 0.0], [0.0, np.inf]]), [0, 1])
    with pytest.raises(InputError, match=r"^`indices` must lie in 0\.\.1 for a 2x2 covariance; got \[2\]\.$"):
        gaussian_moment(np.eye(2), [0, 2])
    with pytest.raises(InputError, match=r"^`indices` must be integers \(not bool or float\); got \[0\.0, 1\.0\]\.$"):
        gaussian_moment(np.eye(2), [0.0, 1.0])
    with pytest.raises(InputError, match=r"^`indices` must be a sequence of integers; got \['a'\]\.$"):
        gaussian_moment(np.eye(2), ["a"])

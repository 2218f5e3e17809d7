"""Numeric Edgeworth densities and Cornish–Fisher quantiles against exact laws and statsmodels."""

import warnings
from math import factorial

import numpy as np
import pytest
from scipy import stats

from pft.errors import InputError, NotPositiveDefiniteError, OutOfReachError
from pft.numeric import cornish_fisher, edgeworth_logpdf, edgeworth_pdf
from pft.symbolic import cumulants_to_moments

NS = np.array([10, 50, 200])


def _exp_sum_cumulants(n, order):
    """Standardized sum of n iid Exponential(1): κ_r = (r-1)! n^(1-r/2)."""
    return [0.0, 1.0] + [factorial(r - 1) * n ** (1 - r / 2) for r in range(3, order + 3)]


def _slope(errors):
    return np.polyfit(np.log(NS), np.log(errors), 1)[0]


@pytest.mark.parametrize("order", [1, 2, 3])
def test_density_error_falls_like_n_to_minus_order_plus_one_over_two(order):
    # Truth: the standardized Gamma(n, 1) density, sqrt(n) gamma.pdf(n + sqrt(n) z; n).
    z = np.linspace(-4, 4, 801)
    errors = []
    for n in NS:
        true = np.sqrt(n) * stats.gamma.pdf(n + np.sqrt(n) * z, n)
        errors.append(np.max(np.abs(edgeworth_pdf(z, _exp_sum_cumulants(n, order), order=order) - true)))
    # measured slopes: -1.13, -1.63, -2.15 (pre-asymptotic at n = 10 steepens them a little)
    assert abs(_slope(errors) + (order + 1) / 2) < 0.2, errors


@pytest.mark.parametrize("order", [1, 2, 3])
def test_cornish_fisher_error_slope(order):
    q = np.array([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    errors = []
    for n in NS:
        true = (stats.gamma.ppf(q, n) - n) / np.sqrt(n)
        errors.append(np.max(np.abs(cornish_fisher(q, _exp_sum_cumulants(n, order), order=order) - true)))
    assert abs(_slope(errors) + (order + 1) / 2) < 0.2, errors


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4])
def test_equals_statsmodels_expanded_normal(order):
    from statsmodels.distributions.edgeworth import ExpandedNormal

    cumulants = [0.3, 1.7, 0.4, 0.2, 0.1, 0.05]
    x = np.linspace(-4, 5, 37)
    with warnings.catch_warnings():
        # ExpandedNormal warns when its polynomial has real roots within 4σ; not our concern.
        warnings.simplefilter("ignore", RuntimeWarning)
        # a list, not an array: ExpandedNormal rescales an array argument in place
        reference = ExpandedNormal(list(cumulants[: order + 2]))
        want = reference.pdf(x)
    np.testing.assert_allclose(edgeworth_pdf(x, cumulants, order=order), want, rtol=1e-12, atol=1e-15)


def test_logpdf_matches_pdf_and_is_minus_inf_where_the_series_is_negative():
    cumulants = [0.0, 1.0, 1.5, 0.0]
    x = np.linspace(-6, 6, 49)
    pdf = edgeworth_pdf(x, cumulants, order=1)
    logpdf = edgeworth_logpdf(x, cumulants, order=1)
    assert np.any(pdf < 0)
    np.testing.assert_allclose(logpdf[pdf > 0], np.log(pdf[pdf > 0]), rtol=1e-12)
    assert np.all(np.isneginf(logpdf[pdf <= 0]))
    # far tail: the pdf underflows, the log does not
    assert np.isfinite(edgeworth_logpdf(60.0, [0.0, 1.0, 0.1, 0.0], order=1))


def test_inputs_are_never_mutated():
    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    k3 = np.zeros((2, 2, 2))
    k3[0, 0, 0] = 0.5
    cumulants = [np.array([1.0, -1.0]), cov, k3]
    copies = [c.copy() for c in cumulants]
    x = np.array([[0.5, 0.5], [1.0, -2.0]])
    xc = x.copy()
    edgeworth_pdf(x, cumulants, order=1)
    for a, b in zip(cumulants, copies):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, xc)
    uni = np.array([0.0, 2.0, 0.5])
    edgeworth_pdf(0.3, uni, order=1)
    np.testing.assert_array_equal(uni, [0.0, 2.0, 0.5])


def _independent_tensors(ks):
    d = len(ks)
    out = [np.array([k[0] for k in ks]), np.diag([k[1] for k in ks])]
    for r in range(3, len(ks[0]) + 1):
        t = np.zeros((d,) * r)
        for j, k in enumerate(ks):
            t[(j,) * r] = k[r - 1]
        out.append(t)
    return out


@pytest.mark.parametrize("order", [1, 2, 3])
def test_multivariate_independent_equals_truncated_product_of_univariate(order):
    ks = [[0.1, 1.3, 0.3, 0.2, 0.1], [-0.2, 0.7, -0.1, 0.4, 0.2], [0.0, 2.0, 0.5, -0.3, 0.05]]
    pts = np.random.default_rng(0).normal(size=(20, 3))
    got = edgeworth_pdf(pts, _independent_tensors(ks), order=order)
    # Per-variable pieces: order-k term = pdf(order k) - pdf(order k-1); keep total order <= order.
    pieces = []
    for j, k in enumerate(ks):
        p = [edgeworth_pdf(pts[:, j], k, order=o) for o in range(order + 1)]
        pieces.append([p[0]] + [p[o] - p[o - 1] for o in range(1, order + 1)])
    want = np.zeros(len(pts))
    for i in range(order + 1):
        for j in range(order + 1 - i):
            for k in range(order + 1 - i - j):
                want += pieces[0][i] * pieces[1][j] * pieces[2][k]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _correlated_case():
    rng = np.random.default_rng(5)
    mean = np.array([0.5, -0.3])
    cov = np.array([[1.5, 0.6], [0.6, 0.8]])
    k3 = np.zeros((2, 2, 2))
    k4 = np.zeros((2, 2, 2, 2))
    for idx in np.ndindex(2, 2, 2):
        k3[idx] = [0.3, -0.1, 0.2, 0.15][sum(idx)]
    for idx in np.ndindex(2, 2, 2, 2):
        k4[idx] = [0.4, 0.1, -0.05, 0.1, 0.3][sum(idx)]
    return [mean, cov, k3, k4], rng


def test_multivariate_correlated_density_has_the_known_moments():
    # The order-2 series reproduces the moments of its cumulants up to order 4 exactly
    # (Hermite orthogonality); moments from set partitions, integrals by the trapezoid rule
    # on a fine grid in x (spectrally accurate for a smooth, Gaussian-decaying integrand).
    cumulants, _ = _correlated_case()
    moments = cumulants_to_moments(cumulants)
    grid = np.linspace(-11, 11, 441)
    h = grid[1] - grid[0]
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    dens = edgeworth_pdf(pts, cumulants, order=2)
    assert np.sum(dens) * h * h == pytest.approx(1.0, abs=1e-10)
    for idx in [(0,), (1,), (0, 1), (1, 1), (0, 0, 1), (1, 1, 1), (0, 0, 1, 1), (0, 1, 1, 1)]:
        want = moments[len(idx) - 1][idx]
        got = np.sum(np.prod(pts[:, list(idx)], axis=1) * dens) * h * h
        assert got == pytest.approx(want, abs=1e-9), idx


def test_multivariate_is_affine_covariant():
    # y = A x: the density of y is f_x(A⁻¹ y) / |det A| with cumulants transformed on every index.
    cumulants, rng = _correlated_case()
    a = np.array([[1.0, 0.4], [-0.3, 2.0]])
    transformed = [np.einsum("ia,a->i", a, cumulants[0])]
    for r in range(2, 5):
        t = cumulants[r - 1]
        for axis in range(r):
            t = np.moveaxis(np.tensordot(a, t, axes=([1], [axis])), 0, axis)
        transformed.append(t)
    y = rng.normal(size=(15, 2))
    x = np.linalg.solve(a, y.T).T
    for order in (1, 2):
        got = edgeworth_pdf(y, transformed, order=order)
        want = edgeworth_pdf(x, cumulants, order=order) / abs(np.linalg.det(a))
        np.testing.assert_allclose(got, want, rtol=1e-12)
        log = edgeworth_logpdf(y, transformed, order=order)
        np.testing.assert_allclose(log[got > 0], np.log(got[got > 0]), rtol=1e-12)


def test_errors():
    with pytest.raises(InputError, match=r"^`cumulants` must have at least 3 entries \(κ_1 … κ_3\) for order 1; got 2\.$"):
        edgeworth_pdf(0.0, [0.0, 1.0], order=1)
    with pytest.raises(InputError, match=r"^`cumulants` must be a sequence \[mean, variance, κ3, \.\.\.\]; got str\.$"):
        edgeworth_pdf(0.0, "0,1,0", order=1)
    with pytest.raises(InputError, match=r"^`q` must lie strictly between 0 and 1; got values in \[0\.5, 1\.0\]\.$"):
        cornish_fisher([0.5, 1.0], [0.0, 1.0, 0.0, 0.0], order=2)
    with pytest.raises(NotPositiveDefiniteError, match=r"^`cumulants\[1\]` \(the variance\) must be > 0; got -1\.0\.$"):
        edgeworth_pdf(0.0, [0.0, -1.0, 0.0], order=1)
    with pytest.raises(InputError, match=r"^`x` must have shape \(N, 2\) or \(2,\) for a 2-dimensional variable; got shape \(3,\)\.$"):
        edgeworth_pdf(np.zeros(3), [np.zeros(2), np.eye(2), np.zeros((2, 2, 2))], order=1)
    with pytest.raises(NotPositiveDefiniteError):
        edgeworth_pdf(0.0, [0.0, -1.0, 0.0], order=1)
    with pytest.raises(NotPositiveDefiniteError, match=r"^`cumulants\[1\]` \(the covariance\) must be positive definite; got smallest eigenvalues"):
        edgeworth_pdf(np.zeros(2), [np.zeros(2), np.array([[1.0, 1.0], [1.0, 1.0]]), np.zeros((2, 2, 2))], order=1)
    with pytest.raises(InputError, match="`x`"):
        edgeworth_pdf(np.zeros(3), [np.zeros(2), np.eye(2), np.zeros((2, 2, 2))], order=1)
    with pytest.raises(InputError, match="`q`"):
        cornish_fisher(1.5, [0.0, 1.0, 0.0], order=1)
    d = 12
    big = [np.zeros(d), np.eye(d)] + [np.zeros((d,) * r) for r in (3, 4, 5, 6)]
    with pytest.raises(OutOfReachError, match="tensor terms"):
        edgeworth_pdf(np.zeros(d), big, order=4)

import itertools
import math

import numpy as np
import pytest

from pft.errors import InputError, NotFittedError
from pft.numeric import PerturbativeBackground, edgeworth_polynomial, kurtosis_directions
from pft.numeric._perturbative import sample_cumulants


def _he3(y, i, j, k):
    d = np.eye(y.shape[1])
    return y[:, i] * y[:, j] * y[:, k] - d[i, j] * y[:, k] - d[i, k] * y[:, j] - d[j, k] * y[:, i]


def _he4(y, i, j, k, l):
    d = np.eye(y.shape[1])
    yy = lambda a, b: y[:, a] * y[:, b]  # noqa: E731
    return (
        y[:, i] * y[:, j] * y[:, k] * y[:, l]
        - d[i, j] * yy(k, l) - d[i, k] * yy(j, l) - d[i, l] * yy(j, k)
        - d[j, k] * yy(i, l) - d[j, l] * yy(i, k) - d[k, l] * yy(i, j)
        + d[i, j] * d[k, l] + d[i, k] * d[j, l] + d[i, l] * d[j, k]
    )


def _sym(t):
    r = t.ndim
    return sum(np.transpose(t, p) for p in itertools.permutations(range(r))) / math.factorial(r)


def test_correction_polynomial_equals_naive_tensor_hermite():
    rng = np.random.default_rng(0)
    r = 3
    k3 = _sym(rng.standard_normal((r,) * 3))
    k4 = _sym(rng.standard_normal((r,) * 4))
    y = rng.standard_normal((50, r))
    naive = sum(k3[i, j, k] * _he3(y, i, j, k) for i, j, k in itertools.product(range(r), repeat=3)) / 6
    naive = naive + sum(
        k4[i, j, k, l] * _he4(y, i, j, k, l) for i, j, k, l in itertools.product(range(r), repeat=4)
    ) / 24
    np.testing.assert_allclose(edgeworth_polynomial(k3, k4, y), naive, rtol=1e-12, atol=1e-12)


def test_one_dimensional_hermite_matches_numpy():
    from numpy.polynomial.hermite_e import hermeval

    y = np.linspace(-3, 3, 13)
    expected = 0.7 * hermeval(y, [0, 0, 0, 1]) / 6 - 0.4 * hermeval(y, [0, 0, 0, 0, 1]) / 24
    got = edgeworth_polynomial(np.full((1, 1, 1), 0.7), np.full((1, 1, 1, 1), -0.4), y[:, None])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def _gamma_data(n, shape, seed):
    rng = np.random.default_rng(seed)
    s = (rng.gamma(shape, size=n) - shape) / math.sqrt(shape)
    # the Gamma coordinate has the largest variance, so it is the top principal direction
    return np.c_[3.0 * s, rng.standard_normal((n, 2))]


def test_density_is_normalised_monte_carlo():
    # E_φ[f/φ] = 1 under the fitted Gaussian, for a strongly non-Gaussian fit.
    pb = PerturbativeBackground(n_directions=2, basis="principal").fit(_gamma_data(4000, 1.0, 1))
    assert pb.normalizer_ > 1.05
    s = pb.gaussian_.sample(400_000, seed=2)
    ratio = np.exp(pb.gain(s))
    se = ratio.std() / math.sqrt(len(ratio))
    assert abs(ratio.mean() - 1.0) < 4 * se


def test_cumulant_sums_equal_a_naive_loop_over_index_tuples():
    # the tensors and their SEs come from Gram products of outer products; a loop over every
    # index tuple with the textbook formulas is the independent twin
    rng = np.random.default_rng(4)
    y = rng.standard_normal((3000, 3)) @ rng.standard_normal((3, 3)) + rng.exponential(1.0, (3000, 3))
    k3, se3, k4, se4 = sample_cumulants(y)
    z = y - y.mean(axis=0)
    C = z.T @ z / len(z)
    for i, j, k in itertools.product(range(3), repeat=3):
        p = z[:, i] * z[:, j] * z[:, k]
        assert k3[i, j, k] == pytest.approx(p.mean(), rel=1e-10, abs=1e-12)
        assert se3[i, j, k] == pytest.approx(p.std() / math.sqrt(len(p)), rel=1e-8)
        for l in range(3):
            q = p * z[:, l]
            gauss = C[i, j] * C[k, l] + C[i, k] * C[j, l] + C[i, l] * C[j, k]
            assert k4[i, j, k, l] == pytest.approx(q.mean() - gauss, rel=1e-10, abs=1e-12)
            assert se4[i, j, k, l] == pytest.approx(q.std() / math.sqrt(len(q)), rel=1e-8)


def test_cumulants_match_closed_form_gamma():
    # Standardised Gamma(k): κ3 = 2/√k, κ4 = 6/k (exact).
    shape = 20.0
    y = _gamma_data(200_000, shape, 3)[:, :1] / 3.0
    k3, se3, k4, se4 = sample_cumulants(y)
    assert abs(k3[0, 0, 0] - 2 / math.sqrt(shape)) < 4 * se3[0, 0, 0]
    # se4 is the SE of the raw fourth moment; the cumulant's SE is of the same order.
    assert abs(k4[0, 0, 0, 0] - 6 / shape) < 6 * se4[0, 0, 0, 0]


def test_gain_near_negentropy_in_perturbative_regime():
    # For weak non-Gaussianity the expected held-out gain is Comon's negentropy
    # κ3²/12 + κ4²/48 to leading order (here 0.2/12 + 0.09/48 = 0.0186 nats).
    x = _gamma_data(120_000, 20.0, 4)
    pb = PerturbativeBackground(n_directions=1, basis="principal", shrinkage=None).fit(x[:60_000])
    assert pb.amplitude_ > 0.8
    g = pb.gain(x[60_000:])
    se = g.std() / math.sqrt(len(g))
    negentropy = (4 / 20) / 12 + (6 / 20) ** 2 / 48
    assert g.mean() > 5 * se
    assert abs(g.mean() - negentropy) < 0.25 * negentropy + 4 * se


def test_gaussian_data_gets_no_correction():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8000, 10)) @ rng.standard_normal((10, 10))
    pb = PerturbativeBackground(n_directions=4, seed=0).fit(x[:6000])
    g = pb.gain(x[6000:])
    se = g.std() / math.sqrt(len(g))
    assert abs(g.mean()) <= 3 * se + 1e-12
    assert pb.normalizer_ < 1.01


def test_given_directions_are_used():
    rng = np.random.default_rng(6)
    x = _gamma_data(20000, 2.0, 6) @ np.diag([1.0, 2.0, 3.0])  # Gamma along the first axis
    pb = PerturbativeBackground(directions=[[1.0, 0.0, 0.0]]).fit(x)
    assert abs(pb.directions_[0, 0]) == pytest.approx(1.0, abs=1e-2)
    assert pb.kappa3_[0, 0, 0] > 0.5


def test_kurtosis_directions_recover_sources():
    rng = np.random.default_rng(7)
    n = 20000
    S = np.c_[rng.laplace(size=n) / math.sqrt(2), rng.uniform(-math.sqrt(3), math.sqrt(3), n), rng.standard_normal((n, 3))]
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    W, kurt = kurtosis_directions(S @ Q.T, 2, seed=0)
    # Laplace (excess kurtosis 3) first, uniform (-1.2) second; directions are the rows of Q.
    assert kurt[0] == pytest.approx(3.0, abs=0.4) and kurt[1] == pytest.approx(-1.2, abs=0.1)
    assert abs(W[0] @ Q[:, 0]) > 0.99 and abs(W[1] @ Q[:, 1]) > 0.99


def test_bad_settings():
    x = np.random.default_rng(0).standard_normal((100, 3))
    with pytest.raises(InputError, match="`basis`"):
        PerturbativeBackground(basis="pca").fit(x)
    with pytest.raises(InputError, match="`n_directions`"):
        PerturbativeBackground(n_directions=5).fit(x)
    with pytest.raises(InputError, match="`order`"):
        PerturbativeBackground(order=3).fit(x)
    with pytest.raises(InputError, match="linearly dependent"):
        PerturbativeBackground(directions=[[1, 0, 0], [2, 0, 0]]).fit(x)
    with pytest.raises(NotFittedError):
        PerturbativeBackground().gain(x)

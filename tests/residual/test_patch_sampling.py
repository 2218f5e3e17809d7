"""The perturbative-background sampler against the density it samples (quadrature)."""

import numpy as np
import pytest

from pft.numeric import PerturbativeBackground, edgeworth_polynomial


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = np.c_[rng.gamma(4.0, size=(20000, 1)), rng.normal(size=(20000, 2)) * [1.0, 2.0]]
    pb = PerturbativeBackground(n_directions=1, seed=0).fit(x)
    assert pb.amplitude_ > 0.1  # a real correction to sample from
    return pb


def test_polynomial_matches_the_backgrounds_gain(fitted):
    pb = fitted
    y = np.random.default_rng(1).normal(size=(50, 1)) * 2
    g = edgeworth_polynomial(pb.kappa3_, pb.kappa4_, y)
    x = pb.gaussian_.mean_ + pb.gaussian_.pattern(y @ pb.basis_)
    gain = np.log((1 + g / 2) ** 2 + pb.floor) - np.log(pb.normalizer_ + pb.floor)
    np.testing.assert_allclose(gain, pb.gain(x), rtol=1e-10, atol=1e-12)


def test_samples_follow_the_density(fitted):
    pb = fitted
    n = 40000
    s = pb.sample(n, seed=2)
    w = pb.gaussian_.whiten(s)
    y = (w @ pb.basis_.T)[:, 0]
    # Truth: moments of f(y) = φ(y) exp(gain(y)) along the corrected direction, by quadrature
    # of the background's own logpdf-gain (pft.numeric), on a fine grid.
    t = np.linspace(-14, 14, 40001)
    xs = pb.gaussian_.mean_ + pb.gaussian_.pattern(t[:, None] @ pb.basis_)
    f = np.exp(-0.5 * t**2 + pb.gain(xs)) / np.sqrt(2 * np.pi)
    assert np.trapezoid(f, t) == pytest.approx(1.0, abs=1e-8)
    for k in (1, 2, 3, 4):
        truth = np.trapezoid(f * t**k, t)
        est = np.mean(y**k)
        se = np.std(y**k) / np.sqrt(n)
        assert abs(est - truth) < 4 * se, (k, est, truth, se)
    # The complement is standard normal and independent of the corrected direction.
    perp = w - np.outer(y, pb.basis_[0])
    proj = perp @ np.linalg.svd(np.eye(w.shape[1]) - np.outer(pb.basis_[0], pb.basis_[0]))[0][:, :2]
    np.testing.assert_allclose(np.var(proj, axis=0), 1.0, atol=4 * np.sqrt(2 / n))
    # A Gaussian-only draw would fail the third moment: the test can tell them apart.
    third = np.trapezoid(f * t**3, t)
    assert abs(third) > 8 * np.std(y**3) / np.sqrt(n)


def test_polynomial_against_a_naive_twin_in_three_directions():
    import itertools

    rng = np.random.default_rng(3)
    r = 3
    k3 = rng.normal(size=(r,) * 3)
    k3 = sum(np.transpose(k3, p) for p in itertools.permutations(range(3))) / 6
    k4 = rng.normal(size=(r,) * 4)
    k4 = sum(np.transpose(k4, p) for p in itertools.permutations(range(4))) / 24
    y = rng.normal(size=(5, r))
    d = np.eye(r)
    for n in range(5):
        # Tensor Hermite polynomials written out index by index.
        he3 = sum(
            k3[i, j, k] * (y[n, i] * y[n, j] * y[n, k] - y[n, i] * d[j, k] - y[n, j] * d[i, k] - y[n, k] * d[i, j])
            for i, j, k in itertools.product(range(r), repeat=3)
        )
        he4 = 0.0
        for i, j, k, l in itertools.product(range(r), repeat=4):
            yi, yj, yk, yl = y[n, i], y[n, j], y[n, k], y[n, l]
            h = yi * yj * yk * yl
            h -= yi * yj * d[k, l] + yi * yk * d[j, l] + yi * yl * d[j, k] + yj * yk * d[i, l] + yj * yl * d[i, k] + yk * yl * d[i, j]
            h += d[i, j] * d[k, l] + d[i, k] * d[j, l] + d[i, l] * d[j, k]
            he4 += k4[i, j, k, l] * h
        assert edgeworth_polynomial(k3, k4, y[n : n + 1])[0] == pytest.approx(he3 / 6 + he4 / 24, rel=1e-10)


def test_gaussian_draws_on_the_model_side_are_the_backgrounds_own_samples():
    """patch_scores forms μ + z Λ^{1/2} Vᵀ with torch from the same normals as
    GaussianBackground.sample: the same draws, seed for seed, also on a rank-deficient fit."""
    import torch

    from pft.numeric import GaussianBackground
    from pft.residual._patch_rungs import GaussianDraws as _GaussianDraws

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)) @ rng.normal(size=(3, 5)) + rng.normal(size=5)  # rank 3 of 5
    for g in (GaussianBackground().fit(x), GaussianBackground(shrinkage=None, singular="project").fit(x)):
        draws = _GaussianDraws(g, torch.device("cpu"))
        a, b = np.random.default_rng(7), np.random.default_rng(7)
        for k in (1, 64, 3):
            got = draws(k, a)
            assert isinstance(got, torch.Tensor) and got.dtype == torch.float64 and got.shape == (k, 5)
            np.testing.assert_allclose(got.numpy(), g.sample(k, seed=b), rtol=1e-12, atol=1e-12)

"""The perturbative-background sampler against the density it samples (quadrature)."""

import numpy as np
import pytest

from pft.numeric import PerturbativeBackground
from pft.residual._sampling import edgeworth_polynomial, sample_perturbative


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
    s = sample_perturbative(pb, n, seed=2)
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

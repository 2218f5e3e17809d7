"""score's reported directions on a Gaussian residual: held-out z-scores within their null."""

import math

import numpy as np

from pft.residual import score


def test_gaussian_residual_directions_claim_no_significance_over_seeds():
    # Directions are chosen on training rows; their skewness and kurtosis are measured on held-out
    # rows, so each z is N(0, 1) (asymptotically) whatever was chosen. 6 seeds x 8 directions x 2
    # statistics = 96 z-scores: all |z| < 4.5 (a Gaussian exceeds 4.5 with probability 7e-6 each),
    # and their mean square is 1 within 4 Monte Carlo SE (var z² = 2).
    zs = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        acts = rng.normal(size=(6000, 16)) * np.linspace(0.5, 2.0, 16)
        recon = acts - rng.normal(size=acts.shape) @ np.diag(np.linspace(0.2, 1.0, 16))
        rep = score(acts, recon, seed=seed, progress=False)
        assert abs(rep.nongaussian_bits) < 4 * rep.nongaussian_bits_se + 1e-3
        zs += list(rep.nongaussian_z) + list(rep.nongaussian_skewness_z)
        assert len(rep.nongaussian_variance_share) == len(rep.nongaussian_z) == len(rep.nongaussian_filters)
    zs = np.asarray(zs)
    assert np.all(np.abs(zs) < 4.5)
    assert abs(np.mean(zs**2) - 1) < 4 * math.sqrt(2 / len(zs))

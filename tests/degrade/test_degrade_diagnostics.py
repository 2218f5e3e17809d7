"""Chain diagnostics against processes with known answers."""

import math

import numpy as np
import pytest

from pft.degrade import effective_sample_size, split_rhat
from pft.degrade._diagnostics import drift_z, mcse_mean
from pft.errors import InputError


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_ess_of_ar1_matches_integrated_autocorrelation_time(rho, ar1):
    # AR(1): ρ_k = ρ^k, so τ = 1 + 2 Σ ρ^k = (1 + ρ)/(1 - ρ) exactly. The ESS estimate of
    # N = 80 000 draws has a relative error of a few per cent at these τ; allow 12 %.
    x = ar1(rho, 4, 20_000, np.random.default_rng(1))
    truth = x.size * (1 - rho) / (1 + rho)
    assert abs(effective_sample_size(x) / truth - 1) < 0.12


def test_mcse_is_calibrated_over_replicates(ar1):
    # The spread of the means of 200 independent AR(1) runs is the true standard error of one
    # run's mean; the average mcse_mean must agree with it (sd of an sd from 200 runs: 5 %).
    rho, means, ses = 0.8, [], []
    for seed in range(200):
        x = ar1(rho, 2, 500, np.random.default_rng(100 + seed))
        means.append(x.mean())
        ses.append(mcse_mean(x))
    assert abs(np.mean(ses) / np.std(means, ddof=1) - 1) < 0.2


def test_split_rhat_near_one_for_mixed_chains_and_large_when_not(ar1):
    x = ar1(0.5, 4, 2000, np.random.default_rng(2))
    assert abs(split_rhat(x) - 1) < 0.01
    shifted = x + np.array([0.0, 0.0, 0.0, 1.0])[:, None]
    assert split_rhat(shifted) > 1.1
    # A trend inside every chain is caught by the split halves even with identical chains.
    trend = x + np.linspace(0, 2, x.shape[1])
    assert split_rhat(trend) > 1.1
    # Different scales (same mean) are caught by the folded R-hat.
    scaled = x * np.array([1.0, 1.0, 1.0, 3.0])[:, None]
    assert split_rhat(scaled) > 1.1


def test_drift_z_is_standard_normal_when_stationary_and_large_for_a_trend(ar1):
    zs = [drift_z(ar1(0.5, 4, 1000, np.random.default_rng(10 + s))) for s in range(40)]
    # 40 draws of an (approximately) standard normal: mean within 4/sqrt(40), sd in [0.6, 1.5].
    assert abs(np.mean(zs)) < 4 / math.sqrt(40)
    assert 0.6 < np.std(zs) < 1.5
    x = ar1(0.5, 4, 1000, np.random.default_rng(3)) + np.linspace(1.0, 0.0, 1000)  # a falling loss
    assert drift_z(x) > 4
    assert math.isnan(drift_z(x[:, :50]))  # segments too short to judge


def test_diagnostics_reject_non_finite_traces():
    x = np.ones((2, 10))
    x[1, 3] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        split_rhat(x)
    with pytest.raises(InputError, match="shape"):
        effective_sample_size(np.ones((2, 3, 4)))

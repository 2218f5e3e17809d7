"""The learning coefficient's standard error against processes whose variance of the mean is
known exactly: a mode slower than a chain (each chain sits at its own level for its whole
length, as chains do along the valley of minima at a singular w*) on top of fast AR(1) noise.

Truth: chains ``x_ct = m_c + e_ct`` with ``m_c ~ N(0, s²)`` independent per chain and ``e`` a
stationary AR(1) series (unit variance, coefficient ``φ``), so the grand mean of ``C`` chains of
``N`` draws has variance ``s²/C + v_N / C`` with
``v_N = [N (1 + φ)/(1 - φ) - 2 φ (1 - φᴺ)/(1 - φ)²] / N²``, exactly.
"""

import math

import numpy as np
import pytest

from pft.degrade._results import ChainDiagnostics, SampleResult


def ar1(phi, n_chains, n, rng):
    x = np.empty((n_chains, n))
    x[:, 0] = rng.normal(size=n_chains)
    xi = rng.normal(size=(n_chains, n)) * math.sqrt(1 - phi**2)
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + xi[:, t]
    return x


def var_of_mean(phi, n):
    """Variance of the mean of n draws of a unit-variance stationary AR(1) series."""
    return (n * (1 + phi) / (1 - phi) - 2 * phi * (1 - phi**n) / (1 - phi) ** 2) / n**2


def result(losses):
    """A full-batch SampleResult of these losses with n β = 1 and L(w*) = 0, so λ̂ = mean."""
    c, n = losses.shape
    diag = ChainDiagnostics(rhat=1.0, ess=float(losses.size), drift_z=0.0,
                            chain_lambdas=tuple(losses.mean(axis=1)), max_loss_increase=0.0)
    return SampleResult(losses=losses, burn_in_losses=np.empty((c, 0)), draws=None, init_loss=0.0,
                        n=1.0, beta=1.0, localization=1.0, step_size=1e-3, batch_size=None, burn_in=0,
                        thin=1, seed=0, param_names=("w",), param_shapes=((1,),), diagnostics=diag)


def test_var_of_mean_formula_is_the_sum_of_autocovariances():
    # independent check of the closed form: Var(mean) = (1/N²) Σ_ij φ^|i-j|
    phi, n = 0.7, 50
    i = np.arange(n)
    assert var_of_mean(phi, n) == pytest.approx((phi ** np.abs(i[:, None] - i[None, :])).sum() / n**2, rel=1e-12)


@pytest.mark.parametrize("slow_sd, n_chains", [(0.0, 4), (0.12, 4), (0.12, 8)])
def test_se_includes_modes_slower_than_a_chain(slow_sd, n_chains):
    # 200 runs of C chains x 2000 draws, φ = 0.9 (τ = 19). With the slow mode (s = 0.12) its
    # share of the variance of the mean is 60 %: the autocorrelation-time SE alone must
    # then fall clearly short, while the reported SE (the larger of it and the between-chain
    # SE) matches the exact sd within 15 %. Without the slow mode the reported SE overstates
    # the exact sd by a little only (the max of two estimates of one number).
    phi, n, runs = 0.9, 2000, 200
    rng = np.random.default_rng(int(1000 * slow_sd) + n_chains)
    exact_sd = math.sqrt((slow_sd**2 + var_of_mean(phi, n)) / n_chains)
    se, ess_se, values = [], [], []
    for _ in range(runs):
        x = ar1(phi, n_chains, n, rng) + slow_sd * rng.normal(size=(n_chains, 1))
        lc = result(x).learning_coefficient()
        values.append(lc.value)
        se.append(lc.se)
        ess_se.append(lc.ess_se)
        assert lc.se == max(lc.ess_se, lc.chain_se)
    # the runs themselves agree with the closed form (sd of an sd from 200 runs: 5 %)
    assert np.std(values, ddof=1) / exact_sd == pytest.approx(1.0, abs=0.12)
    ratio = np.mean(se) / exact_sd
    print(f"slow sd {slow_sd}, {n_chains} chains: mean se / exact sd = {ratio:.3f}, "
          f"ESS-based alone {np.mean(ess_se) / exact_sd:.3f}")
    if slow_sd == 0:
        assert 0.95 < ratio < 1.2
        assert np.mean(ess_se) / exact_sd == pytest.approx(1.0, abs=0.08)
    else:
        assert 0.85 < ratio < 1.15
        assert np.mean(ess_se) / exact_sd < 0.75

"""Regular model: linear regression with squared loss.

With ``L(w) = mean (y - Xw)²`` and ``w*`` the least-squares solution, ``L(w) = L* + ½ (w-w*)ᵀ H
(w-w*)`` exactly with ``H = 2XᵀX/n``, so the tempered local posterior is the Gaussian
``N(w*, P⁻¹)``, ``P = nβ H + γ I`` (docs/math.md section 7), and
``λ = nβ E[L - L*] = ½ tr(nβH P⁻¹) → d/2`` as ``γ → 0``.

The SGLD (unadjusted Langevin) chain on a Gaussian is linear, ``w' - w* = (I - εP/2)(w - w*) +
sqrt(ε) ξ``, so its stationary law is exactly ``N(w*, (P - εP²/4)⁻¹)``: the step-size bias of
every variance along an eigen-direction of precision ``p`` is the factor ``1/(1 - εp/4)``.
"""

import math

import numpy as np
import pytest
import torch

from pft.degrade import StepSizeWarning, TemperedPosterior


def batch_means_se(x, n_batches=20):
    """Standard error of the mean of a (n_chains, n_draws) trace by batch means, pooled
    over chains: independent of the ESS code under test."""
    c, n = x.shape
    b = n // n_batches
    means = x[:, : b * n_batches].reshape(c, n_batches, b).mean(axis=2).ravel()
    return means.std(ddof=1) / math.sqrt(means.size)


def test_sgld_draws_match_the_exact_gaussian_posterior(regression):
    # Spectrum of XᵀX/n in [0.8, 1.2]; n = 1000, β = 1/log n, γ = 1: precisions p in
    # [232, 349]. ε = 1.15e-4 gives ε p_max = 0.040, so the step-size bias of any variance is
    # at most ε p_max / 4 = 1.0 %, well below the ~6 % standard error of these variances.
    spectrum = [0.8, 0.9, 1.1, 1.2]
    model, x, y, h = regression(spectrum)
    gamma, eps = 1.0, 1.15e-4
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=gamma, step_size=eps)
    nbeta = 1000 / math.log(1000)
    assert post.nbeta_ == pytest.approx(nbeta)
    prec = nbeta * h + gamma * np.eye(4)
    p = np.linalg.eigvalsh(prec)
    bias = eps * p.max() / 4
    assert bias < 0.011
    res = post.sample(8000, n_chains=4, burn_in=500, progress=False)
    draws = res.draws.numpy()  # (4, 10000, 4)
    w_star = model.weight.detach().numpy()[0]
    # Whiten with the exact posterior: z = P^{1/2} (w - w*) must be N(0, I).
    evals, evecs = np.linalg.eigh(prec)
    root = evecs @ np.diag(np.sqrt(evals)) @ evecs.T
    z = (draws - w_star) @ root  # root is symmetric
    for i in range(4):
        se = batch_means_se(z[..., i])
        assert abs(z[..., i].mean()) < 4 * se, (i, z[..., i].mean(), se)
        for j in range(i, 4):
            prod = z[..., i] * z[..., j]
            se = batch_means_se(prod)
            truth = 1.0 if i == j else 0.0
            # |sample - truth| within 4 SE plus the (stated, exact) step-size bias bound.
            assert abs(prod.mean() - truth) < 4 * se + bias, (i, j, prod.mean(), se)
    # Same losses as recomputing L at the kept draws (the records line up with the draws).
    k = 1234
    assert res.losses[2, k] == pytest.approx(post.loss_at(res.draws[2, k]), rel=1e-12)


def test_large_step_matches_the_exact_discrete_time_stationary_variance(regression):
    # Isotropic H = 2I: p = 2nβ + γ for every direction. With ε p = 1 the unadjusted chain
    # has variance 1/(p (1 - 1/4)) = 4/(3p): 33 % above the continuous-time posterior. This
    # pins the step convention w ← w - (ε/2)(nβ∇L + γ(w - w*)) + N(0, ε).
    model, x, y, h = regression([1.0, 1.0, 1.0, 1.0], seed=3)
    gamma = 1.0
    p = 2 * 1000 / math.log(1000) + gamma
    eps = 1.0 / p
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=gamma, step_size=eps)
    with pytest.warns(StepSizeWarning, match="inflated by 33 %"):
        res = post.sample(2000, n_chains=4, burn_in=100, progress=False)
    dev = res.draws.numpy() - model.weight.detach().numpy()[0]
    sq = p * dev**2  # E = 1/(1 - εp/4) = 4/3 for each coordinate
    est = sq.mean(axis=-1)  # average over the 4 coordinates: (chains, draws)
    se = batch_means_se(est)
    assert abs(est.mean() - 4 / 3) < 4 * se
    assert est.mean() - 1.0 > 10 * se  # the continuous-time value is clearly excluded


def test_learning_coefficient_is_half_the_dimension(regression):
    # λ = ½ Σ nβh_i/(nβh_i + γ) exactly (quadratic loss); with γ = 0.1 this is d/2 to 0.03 %.
    spectrum = [0.8, 0.9, 1.0, 1.1, 1.2, 1.0]
    model, x, y, h = regression(spectrum, seed=5)
    gamma, eps = 0.1, 1.5e-4
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=gamma, step_size=eps)
    res = post.sample(4000, n_chains=4, burn_in=500, thin=2, progress=False)
    lam, se = post.learning_coefficient()
    nbeta = post.nbeta_
    hv = np.linalg.eigvalsh(h)
    exact = 0.5 * np.sum(nbeta * hv / (nbeta * hv + gamma))
    # Step bias: the unadjusted chain's variances carry the exact factor 1/(1 - εp/4), so
    # its λ is ½ Σ nβh/(p (1 - εp/4)); at ε p_max = 0.052 that is 0.04 above `exact`.
    p = nbeta * hv + gamma
    exact_ula = 0.5 * np.sum(nbeta * hv / (p * (1 - eps * p / 4)))
    step_bias = exact_ula - exact
    assert 0 < step_bias < 0.05
    assert 0 < se < 0.15
    assert abs(lam - exact_ula) < 4 * se
    assert abs(lam - 3.0) < 4 * se + step_bias + (3.0 - exact)
    print(f"regular d=6: lambda_hat = {lam:.4f} +- {se:.4f}, exact {exact:.4f}, with step bias {exact_ula:.4f}")
    # The ESS-based SE agrees with an independent batch-means SE (within a factor 1.6).
    bm = nbeta * batch_means_se(res.losses)
    assert 1 / 1.6 < se / bm < 1.6
    assert res.learning_coefficient().value == lam


def test_minibatch_sgld_learning_coefficient(regression):
    # Minibatches of 100 add gradient noise of covariance (ε nβ/2)² Var(∇L_batch) per step,
    # about ε (nβ)² (2/b) σ² ≈ 6 % of the injected noise at these settings; λ̂ may be biased
    # up by that much: tolerance 4 SE + 0.1 d/2.
    model, x, y, h = regression([1.0, 1.0, 1.0], seed=7)
    post = TemperedPosterior(
        model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=1e-4, batch_size=100
    )
    post.sample(3000, n_chains=4, burn_in=500, progress=False)
    lam, se = post.learning_coefficient()
    assert abs(lam - 1.5) < 4 * se + 0.15


def test_same_seed_same_numbers(regression):
    model, x, y, h = regression([1.0, 1.0])
    kw = dict(localization=1.0, step_size=1e-3, seed=11)
    a = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), **kw).sample(50, n_chains=2, burn_in=5, progress=False)
    b = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), **kw).sample(50, n_chains=2, burn_in=5, progress=False)
    c = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), **{**kw, "seed": 12}).sample(
        50, n_chains=2, burn_in=5, progress=False
    )
    assert torch.equal(a.draws, b.draws) and np.array_equal(a.losses, b.losses)
    assert not torch.equal(a.draws, c.draws)
    assert not torch.equal(a.draws[0], a.draws[1])  # chains are independent

"""The sampler's free energy against the Laplace (Gaussian) approximation.

What is compared. Let ``F(N) = -log ∫ exp(-N L(w) - (γ/2)‖w - w*‖²) dw`` be the local free
energy at ``N = nβ``. Then ``dF/dN = E_N[L]`` (the tempered posterior mean of the loss), so
thermodynamic integration of SGLD estimates gives

    F(N₂) - F(N₁) - (N₂ - N₁) L* = ∫ N (E_N[L] - L*) d log N = ∫ λ̂(N) d log N,

i.e. the area under the sampler's λ̂ against log N. Laplace's method gives
``F(N) = N L* + ½ log det(N H + γ I) - (d/2) log 2π`` (exact for a quadratic loss), whose
difference is ``½ log det[(N₂H + γ)(N₁H + γ)⁻¹]`` and tends to ``(d/2) log(N₂/N₁)`` as
``γ → 0``: the ``λ log n`` term of ``F_n ≈ n L* + λ log n`` with ``λ = d/2``. At the same
time ``λ̂(N) = N ∂_N (F - N L*)`` is the local slope of the free energy in ``log N``.

The first test uses the closed form; the second builds the same Laplace free energy with
``pft.numeric.laplace`` (autodiff Hessian of the loss) and is skipped until that exists.
"""

import math

import numpy as np
import pytest
import torch

from pft.degrade import TemperedPosterior


def _lambda_curve(model, x, y, n_values, *, gamma, seed):
    """λ̂(N) and its SE at each N = nβ (n = len(x), β = N / n) with ε p_max = 0.04."""
    n = x.shape[0]
    h = 2.0 * (x.T @ x).numpy() / n
    hmax = np.linalg.eigvalsh(h).max()
    out = []
    for k, big_n in enumerate(n_values):
        eps = 0.04 / (big_n * hmax + gamma)
        post = TemperedPosterior(
            model, torch.nn.MSELoss(), (x, y), beta=big_n / n, localization=gamma, step_size=eps, seed=seed + k
        )
        post.sample(1500, n_chains=4, burn_in=300, thin=4, progress=False)
        lam, se = post.learning_coefficient()
        # ε p_max = 0.04: the stationary variances are high by at most 1 % (exact for the
        # unadjusted chain on a Gaussian), so λ̂ is high by at most 0.01 λ.
        out.append((lam, se, post.init_loss_))
    return out, h


def test_free_energy_difference_matches_laplace(regression):
    spectrum = [0.6, 0.9, 1.2, 1.5]
    model, x, y, _ = regression(spectrum, n=500, seed=4)
    d = len(spectrum)
    # N from 10 to 1000 with γ = 20: N h / (N h + γ) runs from 0.23 to 0.99, so λ(N) climbs
    # from ~0.6 towards d/2 = 2 and the area is not just (d/2) log(N₂/N₁).
    gamma, n1, n2 = 20.0, 10.0, 1000.0
    nodes, weights = np.polynomial.legendre.leggauss(3)
    half = 0.5 * math.log(n2 / n1)
    logs = math.log(n1) + half * (nodes + 1)
    curve, h = _lambda_curve(model, x, y, np.exp(logs), gamma=gamma, seed=100)
    hv = np.linalg.eigvalsh(h)
    laplace_diff = 0.5 * np.sum(np.log((n2 * hv + gamma) / (n1 * hv + gamma)))
    # Quadrature error of 3-node Gauss-Legendre in log N on the exact λ(N): computed here
    # (0.0018), negligible against the sampling error.
    exact_lam = [0.5 * np.sum(math.exp(t) * hv / (math.exp(t) * hv + gamma)) for t in logs]
    assert abs(half * np.dot(weights, exact_lam) - laplace_diff) < 5e-3
    lam = np.array([c[0] for c in curve])
    se = np.array([c[1] for c in curve])
    area = half * np.dot(weights, lam)
    area_se = half * math.sqrt(np.dot(weights**2, se**2))
    step_bias = 0.01 * area
    print(f"TI area {area:.4f} +- {area_se:.4f}; Laplace {laplace_diff:.4f}; (d/2) log(N2/N1) {d / 2 * math.log(n2 / n1):.4f}")
    assert abs(area - laplace_diff) < 4 * area_se + step_bias
    # Pointwise: the local slope λ̂(N) follows ½ Σ Nh/(Nh + γ) and is below d/2 at small N.
    for (value, s, _), truth in zip(curve, exact_lam):
        assert abs(value - truth) < 4 * s + 0.01 * truth
    assert lam[0] + 4 * se[0] < d / 2 - 0.5


def test_free_energy_difference_matches_pft_numeric_laplace(regression):
    numeric = pytest.importorskip(
        "pft.numeric", reason="pft.numeric is not importable"
    )
    if not hasattr(numeric, "laplace"):
        pytest.skip("pft.numeric.laplace is not built yet (branch `expansions`); the closed-form twin above runs")
    laplace = numeric.laplace
    spectrum = [0.8, 1.0, 1.2]
    model, x, y, _ = regression(spectrum, n=400, seed=6)
    d, n1, n2 = 3, 50.0, 800.0
    w_star = model.weight.detach()[0].clone()

    def loss(w):
        return torch.mean((y[:, 0] - x @ w) ** 2)

    # Laplace of the loss alone (γ → 0): log Z(N) = -N L* + (d/2) log(2π/N) - ½ log det H.
    # For a quadratic loss every correction c_k vanishes, so order=1 must equal order 0.
    expansion = laplace(loss, w_star.numpy(), order=1)
    f1, f2 = -expansion.log_partition(n1), -expansion.log_partition(n2)
    l_star = float(loss(w_star))
    laplace_diff = f2 - f1 - (n2 - n1) * l_star
    assert laplace_diff == pytest.approx(d / 2 * math.log(n2 / n1), rel=1e-8)
    # The sampler with a weak pull (γ = 1e-2 ≪ N h) integrates to the same area.
    nodes, weights = np.polynomial.legendre.leggauss(3)
    half = 0.5 * math.log(n2 / n1)
    logs = math.log(n1) + half * (nodes + 1)
    curve, _ = _lambda_curve(model, x, y, np.exp(logs), gamma=1e-2, seed=200)
    lam = np.array([c[0] for c in curve])
    se = np.array([c[1] for c in curve])
    area = half * np.dot(weights, lam)
    area_se = half * math.sqrt(np.dot(weights**2, se**2))
    assert abs(area - laplace_diff) < 4 * area_se + 0.01 * area

"""Singular models: the learning coefficient is below d/2 and matches known values.

Both toys are real networks trained on data whose truth is the zero function, so
``w* = 0`` is the most singular point of the set of true parameters.

1. Two-layer linear network 1 → 2 → 1 without biases, ``f(x) = (b·a) x``, ``d = 4``: reduced
   rank regression with input M = 1, output N = 1, H = 2 hidden units, true rank r = 0.
   Aoyagi & Watanabe (2005), "Stochastic complexities of reduced rank regression in Bayesian
   estimation", Neural Networks 18(7):924-933, Main Theorem, case M + H + N + r even with
   N + r ≤ M + H, M + r ≤ N + H, H + r ≤ M + N:
   ``λ = [2(H + r)(M + N) - (M - N)² - (H + r)²] / 8 = (8 - 0 - 4) / 8 = 1/2`` (multiplicity
   1), far below ``d/2 = 2``.

   Exact finite-temperature value, independent of SGLD: with inputs ±1 and targets 0 the
   loss is ``L = q²``, ``q = a·b``. Under the localisation prior ``N(0, I/γ)`` on (a, b), q
   is a sum of two products of independent normals, whose characteristic function is
   ``(1 + s²/γ²)⁻¹``: q is Laplace distributed with density ``(γ/2) e^{-γ|q|}``. Hence
   ``λ(t) = t E[q²] = ∫u² e^{-u² - κu} du / ∫e^{-u² - κu} du`` (u ≥ 0, κ = γ/√t, t = nβ),
   a 1-d integral done here by quadrature; it tends to 1/2 as κ → 0.

2. ``f(x) = w² x`` (d = 1): ``L = w⁴``, ``∫ e^{-t w⁴} dw ∝ t^{-1/4}``, so ``λ = 1/4``; at
   finite t with the prior ``e^{-γw²/2}``, ``λ(t) = ∫v⁴ e^{-v⁴ - κv²} / ∫e^{-v⁴ - κv²}``,
   ``κ = γ / (2√t)``.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from pft.degrade import TemperedPosterior


def exact_two_layer(kappa):
    num = quad(lambda u: u * u * math.exp(-u * u - kappa * u), 0, np.inf)[0]
    den = quad(lambda u: math.exp(-u * u - kappa * u), 0, np.inf)[0]
    return num / den


def exact_quartic(kappa):
    num = quad(lambda v: v**4 * math.exp(-(v**4) - kappa * v * v), 0, np.inf)[0]
    den = quad(lambda v: math.exp(-(v**4) - kappa * v * v), 0, np.inf)[0]
    return num / den


class Square(torch.nn.Module):
    """f(x) = w² x."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        return self.w**2 * x


def pm_one():
    x = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    return x, torch.zeros_like(x)


def test_quadrature_truths_reduce_to_the_published_values():
    assert exact_two_layer(0.0) == pytest.approx(0.5, abs=1e-9)
    assert exact_quartic(0.0) == pytest.approx(0.25, abs=1e-9)


def test_two_layer_linear_network_matches_aoyagi():
    net = torch.nn.Sequential(
        torch.nn.Linear(1, 2, bias=False), torch.nn.Linear(2, 1, bias=False)
    ).double()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    x, y = pm_one()
    # n = 10⁴ (the `n` in nβ; two data rows suffice since the loss is exactly q²), β = 1/log n,
    # t = nβ = 1086, γ = 1 → κ = 0.030 and λ(t) = 0.4915 (quadrature).
    # Step size: the stiff direction has curvature 2t(|a|² + |b|²) ≈ 4000 on typical draws,
    # ε = 2e-5 gives εp ≈ 0.09; a run at 5ε gave λ̂ = 0.577, so the step bias at ε is about
    # 0.015 (linear in ε), below one SE; it is added to the tolerance.
    post = TemperedPosterior(net, torch.nn.MSELoss(), (x, y), n=10_000, localization=1.0, step_size=2e-5)
    post.sample(1500, n_chains=4, burn_in=2000, thin=8, progress=False)
    lam, se = post.learning_coefficient()
    truth = exact_two_layer(1.0 / math.sqrt(post.nbeta_))
    assert abs(truth - 0.4915) < 1e-3
    step_bias = 0.02
    print(f"two-layer linear: lambda_hat = {lam:.4f} +- {se:.4f}; exact(t) {truth:.4f}; Aoyagi 1/2; d/2 = 2")
    assert 0 < se < 0.08  # seeds 0-3 gave 0.033-0.055
    assert abs(lam - truth) < 4 * se + step_bias
    assert abs(lam - 0.5) < 4 * se + step_bias + (0.5 - truth)
    assert lam + 10 * se < 2.0  # clearly singular: λ < d/2


def test_quartic_potential_has_learning_coefficient_one_quarter():
    x, y = pm_one()
    # t = 10⁴/log 10⁴ = 1086, γ = 1: κ = 1/(2√t) = 0.015, λ(t) = 0.2475. The curvature
    # 12 t w² at typical |w| ~ t^{-1/4} is ≈ 400; ε = 1.5e-4 gives εp ≈ 0.06
    # (seeds 0-3 gave λ̂ within 0.7 SE of λ(t); an allowance of 0.01 covers the step bias).
    post = TemperedPosterior(Square(), torch.nn.MSELoss(), (x, y), n=10_000, localization=1.0, step_size=1.5e-4)
    post.sample(3000, n_chains=4, burn_in=500, thin=4, progress=False)
    lam, se = post.learning_coefficient()
    truth = exact_quartic(1.0 / (2 * math.sqrt(post.nbeta_)))
    print(f"w^4: lambda_hat = {lam:.4f} +- {se:.4f}; exact(t) {truth:.4f}; 1/4; d/2 = 1/2")
    assert 0 < se < 0.03
    assert abs(lam - truth) < 4 * se + 0.01
    assert lam + 8 * se < 0.5

"""Six-point vertex and the exact law of scale-invariant networks (beyond 1/n)."""

import math

import numpy as np
import pytest

from pft.errors import InputError
from pft.scaling import MLPConfig, finite_width_theory, sample_ensemble, scale_invariant_law
from pft.scaling._estimators import jackknife


def test_six_point_vertex_of_relu_and_linear_nets_matches_the_exact_law_expanded_by_hand():
    # ReLU: E F² = 1 + 5/n, E F³ = 1 + 15/n + 44/n² (F = (2/n) χ²_M, M ~ Bin(n, ½)), so
    # κ₃(G)/K³ = (E F³)^a − 3 (E F²)^a + 2 = [44 a + 75 a(a−1)]/n² + O(n⁻³), a = ℓ − 1.
    # linear: F = χ²_n/n: 8a + 12a(a−1).
    ell = np.arange(1, 16)
    a = ell - 1
    th = finite_width_theory("relu", 15, C_W=2.0, C_b=0.0, first_kernel=1.7)
    np.testing.assert_allclose(th.U / 1.7**3, 44 * a + 75 * a * (a - 1), rtol=1e-12, atol=1e-10)
    th = finite_width_theory("linear", 15, C_W=1.0, C_b=0.0)
    np.testing.assert_allclose(th.U, 8 * a + 12 * a * (a - 1), rtol=1e-12, atol=1e-10)


def _kappa3_of_G(res, n):
    G = res.conditional_covariance[:, 0, :1]
    return jackknife(lambda a, b, c: n * n * (c - 3 * b * a + 2 * a**3), [G, G**2, G**3])


@pytest.mark.parametrize("act,cw,cb,n,L", [("tanh", 1.0, 0.0, 8, 2), ("tanh", 1.0, 0.0, 16, 4), ("erf", 1.2, 0.1, 16, 3)])
def test_six_point_vertex_against_the_sampler(act, cw, cb, n, L):
    # n² κ₃(G⁽ᴸ⁻¹⁾) → U⁽ᴸ⁾ (exact at L = 2, where G⁽¹⁾ is a mean of n iid terms)
    th = finite_width_theory(act, L, C_W=cw, C_b=cb, first_kernel=cb + cw)
    res = sample_ensemble(MLPConfig(act, n, L, C_W=cw, C_b=cb), 100000, [1.0], seed=2, progress=False)
    est, se = _kappa3_of_G(res, n)
    assert abs(est[0] - th.U[-1]) < 4 * se[0]
    assert se[0] < 0.15 * th.U[-1]  # the check has teeth


def test_exact_law_moments_agree_with_the_layer_law_sampler_at_large_depth_over_width():
    # leaky ReLU (both χ² pieces), L/n = 0.5: exact E G and E G² against the exact-sampler ensemble
    law = scale_invariant_law("leaky_relu:0.4", 8, 4, first_kernel=0.9)
    cfg = MLPConfig("leaky_relu:0.4", 8, 4, C_W=law.C_W, C_b=0.0)
    res = sample_ensemble(cfg, 60000, [math.sqrt(0.9 / law.C_W)], seed=1, progress=False)
    for p in (2, 4):
        est, se = res.moment(p)
        assert abs(est[0] - law.moment(p)) < 4 * se[0]
    G = law.sample_G(200000, seed=3)
    for p in (1, 2):
        est, se = jackknife(lambda m: m, [G[:, None] ** p])
        assert abs(est[0] - law.G_moment(p)) < 4 * se[0]


def test_exact_law_reduces_to_the_closed_forms_and_the_1_over_n_series():
    law = scale_invariant_law("relu", 16, 6)
    assert law.excess_kurtosis() == pytest.approx(3 * ((1 + 5 / 16) ** 5 - 1), rel=1e-13)
    assert law.factor_moment(3) == pytest.approx(1 + 15 / 16 + 44 / 256, rel=1e-13)
    # large n: the exact law approaches the leading order with a 1/n² remainder (slope test)
    errs = []
    for n in (250, 500, 1000, 2000):
        th = finite_width_theory("abs", 5, C_W=1.0, C_b=0.0)
        errs.append(abs(scale_invariant_law("abs", n, 5).excess_kurtosis() - th.excess_kurtosis(n)[-1]))
    slope = np.polyfit(np.log([250, 500, 1000, 2000]), np.log(errs), 1)[0]
    assert abs(slope + 2) < 0.05


def test_log_moments_give_the_lognormal_resummation():
    law = scale_invariant_law("relu", 8, 20)
    G = law.sample_G(200000, seed=0)
    pos = np.log(G[G > 0])
    mean, var = law.log_moments()
    assert abs(pos.mean() - mean) < 4 * pos.std() / math.sqrt(pos.size)
    assert abs((G == 0).mean() - law.prob_zero()) < 4 * math.sqrt(law.prob_zero() / G.size)
    # variance of log G ≈ 5(L−1)/n for ReLU at large n
    big = scale_invariant_law("relu", 4000, 41)
    assert big.log_moments()[1] == pytest.approx(5 * 40 / 4000, rel=2e-3)


def test_exact_law_validation():
    with pytest.raises(InputError, match="scale-invariant"):
        scale_invariant_law("tanh", 8, 3)
    with pytest.raises(InputError, match="`width`"):
        scale_invariant_law("relu", 0, 3)
    X = np.eye(3)
    with pytest.raises(InputError, match="six_point=True"):
        finite_width_theory("relu", 2, C_W=2.0, C_b=0.0, inputs=X).sixth_cumulant(8)  # k = 3: opt-in
    with pytest.raises(InputError, match="at most 3 inputs"):
        finite_width_theory("relu", 2, C_W=2.0, C_b=0.0, inputs=np.eye(4), six_point=True)


def _n2_kappa3(G, n, A, B, C):
    a, b, c = (G[:, p[0], p[1]][:, None] for p in (A, B, C))
    return jackknife(lambda abc, ab, ac, bc, a1, b1, c1: n * n * (abc - ab * c1 - ac * b1 - bc * a1 + 2 * a1 * b1 * c1),
                     [a * b * c, a * b, a * c, b * c, a, b, c])


@pytest.mark.parametrize("act,cw,cb,n,L,slack", [("relu", 2.0, 0.0, 16, 2, 0.0), ("tanh", 1.0, 0.1, 16, 3, 3.0)])
def test_two_input_six_point_vertex_against_the_sampler(act, cw, cb, n, L, slack):
    # n² κ₃(G_A, G_B, G_C) over input pairs → U⁽ᴸ⁾_ABC: exact at L = 2; at L = 3 up to a relative
    # O(1/n) correction (allowed: slack/n of |U|)
    X = np.array([[1.0, 0.0], [0.6, 0.8]])
    th = finite_width_theory(act, L, C_W=cw, C_b=cb, inputs=X)
    res = sample_ensemble(MLPConfig(act, n, L, C_W=cw, C_b=cb, input_dim=2), 100000, X, seed=4, progress=False)
    G = res.conditional_covariance
    for A, B, C in [((0, 0), (0, 0), (1, 1)), ((0, 1), (0, 1), (0, 1)), ((0, 0), (0, 1), (1, 1))]:
        est, se = _n2_kappa3(G, n, A, B, C)
        U = th.U[L - 1][A + B + C]
        assert abs(est[0] - U) < 4 * se[0] + slack * abs(U) / n, (A, B, C, est, se, U)


def test_multi_input_six_point_diagonal_matches_single_input():
    X = np.array([[1.0, 0.0], [0.6, 0.8], [0.3, 0.2]])
    th = finite_width_theory("gelu", 3, C_W=1.5, C_b=0.2, inputs=X, six_point=True)
    for a in range(3):
        one = finite_width_theory("gelu", 3, C_W=1.5, C_b=0.2, first_kernel=0.2 + 1.5 * X[a] @ X[a] / 2)
        np.testing.assert_allclose(th.U[:, a, a, a, a, a, a], one.U, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(th.sixth_cumulant(7)[:, a], one.sixth_cumulant(7), rtol=1e-10, atol=1e-13)
    # symmetric under permuting the three pairs
    np.testing.assert_allclose(th.U[2, 0, 1, 1, 2, 0, 0], th.U[2, 1, 2, 0, 0, 1, 0], rtol=1e-12)

"""Finite-width recursions against closed forms, asymptotics and exact samplers."""

import math

import numpy as np
import pytest

from pft.errors import InputError, NotPositiveDefiniteError
from pft.scaling import FiniteWidthTheory, MLPConfig, critical_point, finite_width_theory, sample_ensemble
from pft.scaling._estimators import jackknife


def test_relu_critical_excess_kurtosis_is_15_ell_minus_1_over_n():
    th = finite_width_theory("relu", 40, C_W=2.0, C_b=0.0, first_kernel=0.7)
    ell = np.arange(1, 41)
    for n in (8, 64, 1000):
        np.testing.assert_allclose(th.excess_kurtosis(n), 15 * (ell - 1) / n, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(th.K, 0.7, rtol=1e-13)  # a fixed point (rounding drifts ~4e-16 per layer)
    np.testing.assert_allclose(th.chi_parallel, 1.0, rtol=1e-13)
    np.testing.assert_allclose(th.K1_shift, 0.0, atol=1e-11)  # E z² = K exactly (ReLU, C_b = 0); V ~ 200 here


@pytest.mark.parametrize("name,slopes", [("linear", (1, 1)), ("abs", (1, -1)), ("leaky_relu:0.3", (1, 0.3))])
def test_scale_invariant_vertex_closed_form(name, slopes):
    # docs/math.md §6: V/K² = (ℓ − 1)(3 A₄/A₂² − 1), A_p = (a₊^p + a₋^p)/2, at criticality
    a, b = slopes
    A2, A4 = (a**2 + b**2) / 2, (a**4 + b**4) / 2
    cp = critical_point(name)
    cb, cw = cp.C_b, cp.C_W
    assert cb == 0 and cw == pytest.approx(2 / (a * a + b * b), rel=1e-15)
    th = finite_width_theory(name, 12, C_W=cw, C_b=cb)
    np.testing.assert_allclose(th.V / th.K**2, np.arange(12) * (3 * A4 / A2**2 - 1), rtol=1e-12, atol=1e-12)


def test_tanh_at_criticality_approaches_the_K_star_zero_asymptotics():
    # PDLT §5.3: K ≈ 1/(2ℓ), V/K² → (2/3) ℓ, K1 → −1/6, with O(log ℓ / ℓ) corrections.
    th = finite_width_theory("tanh", 8000, C_W=1.0, C_b=0.0)
    errs = []
    for ell in (500, 2000, 8000):
        K, V, K1 = th.K[ell - 1], th.V[ell - 1], th.K1_shift[ell - 1]
        errs.append((abs(2 * ell * K - 1), abs(V / K**2 / ell - 2 / 3), abs(K1 + 1 / 6)))
    assert errs[-1][0] < 1e-3 and errs[-1][1] < 1e-3 and errs[-1][2] < 1e-3
    # and the errors keep shrinking (a slope test, not a single tolerance)
    for a, b in zip(errs[:-1], errs[1:]):
        assert all(y < 0.6 * x for x, y in zip(a, b)), errs


def test_tanh_critical_point_and_others():
    # (the full check of every activation against quadrature is in test_scaling_criticality.py)
    pts = {name: critical_point(name) for name in ("tanh", "erf", "sin")}
    got = [(p.C_b, p.C_W, p.K_star) for p in pts.values()]
    assert got == [(0.0, 1.0, 0.0), (0.0, pytest.approx(math.pi / 4, rel=1e-15), 0.0), (0.0, 1.0, 0.0)]
    assert not critical_point("sigmoid").exists
    # a callable in the K* = 0 class: σ(z) = 2 tanh(z) needs C_W = 1/4
    cp = critical_point(lambda z: 2 * np.tanh(z))
    assert cp.universality == "K*=0" and cp.C_b == 0.0 and cp.C_W == pytest.approx(0.25, rel=1e-10)
    # a callable ReLU is recognised as scale-invariant
    relu = critical_point(lambda z: np.maximum(z, 0.0))
    assert relu.universality == "scale-invariant" and relu.C_W == 2.0


def _arccos(Kaa, Kbb, Kab):
    rho = np.clip(Kab / math.sqrt(Kaa * Kbb), -1, 1)
    th = math.acos(rho)
    return math.sqrt(Kaa * Kbb) / (2 * math.pi) * (math.sin(th) + (math.pi - th) * rho)


def test_multi_input_relu_kernel_is_the_arc_cosine_recursion():
    X = np.array([[1.0, 0.0, 0.5], [0.2, -0.9, 0.1], [-0.3, 0.4, 1.2]])
    cb, cw = 0.1, 1.7
    th = finite_width_theory("relu", 6, C_W=cw, C_b=cb, inputs=X)
    K = cb + cw * X @ X.T / 3
    for ell in range(6):
        np.testing.assert_allclose(th.K[ell], K, rtol=1e-13)
        K = cb + cw * np.array([[_arccos(K[a, a], K[b, b], K[a, b]) for b in range(3)] for a in range(3)])


def test_multi_input_erf_kernel_is_the_arcsine_recursion():
    X = np.array([[1.0, 0.3], [-0.5, 0.8]])
    cb, cw = 0.05, 1.3
    th = finite_width_theory("erf", 5, C_W=cw, C_b=cb, inputs=X)
    K = cb + cw * X @ X.T / 2
    for ell in range(5):
        np.testing.assert_allclose(th.K[ell], K, rtol=1e-13)
        d = np.sqrt(1 + 2 * np.diag(K))
        K = cb + cw * 2 / math.pi * np.arcsin(2 * K / np.outer(d, d))


def test_multi_input_diagonal_matches_single_input_recursion():
    # the diagonal of the k-input recursion uses 2-D rules and the tensor contractions; the
    # single-input path uses scalar 1-D sums: two implementations of the same numbers.
    X = np.array([[1.0, 0.0], [0.6, 0.8], [0.3, 0.2]])
    th = finite_width_theory("gelu", 5, C_W=1.5, C_b=0.2, inputs=X)
    for a in range(3):
        one = finite_width_theory("gelu", 5, C_W=1.5, C_b=0.2, first_kernel=0.2 + 1.5 * X[a] @ X[a] / 2)
        np.testing.assert_allclose(th.K[:, a, a], one.K, rtol=1e-13)
        np.testing.assert_allclose(th.V[:, a, a, a, a], one.V, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(th.K1_shift[:, a, a], one.K1_shift, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(th.chi_parallel[:, a], one.chi_parallel, rtol=1e-12)


def _n_cov_of_G(res, n):
    """n Cov(G_A, G_B) of the last layer's conditional covariance, for the index pairs used."""
    G = res.conditional_covariance
    out = {}
    pairs = [(0, 0), (0, 1), (1, 1)]
    for i, A in enumerate(pairs):
        for B in pairs[i:]:
            a, b = G[:, A[0], A[1]][:, None], G[:, B[0], B[1]][:, None]
            est, se = jackknife(lambda ab, a1, b1: n * (ab - a1 * b1), [a * b, a, b])
            out[A + B] = (est[0], se[0])
    return out


def test_two_input_vertex_at_layer_two_is_exact_against_the_sampler():
    # G⁽¹⁾ = (C_W/n) Σ_j σ(z_j)σ(z_j)ᵀ with z_j iid N(0, K⁽¹⁾): n Cov(G⁽¹⁾) = V⁽²⁾ exactly.
    X = np.array([[1.0, 0.0], [0.6, 0.8]])
    th = finite_width_theory("relu", 2, C_W=2.0, C_b=0.0, inputs=X)
    res = sample_ensemble(MLPConfig("relu", 16, 2, C_W=2.0, C_b=0.0, input_dim=2), 20000, X, seed=11, progress=False)
    for idx, (est, se) in _n_cov_of_G(res, 16).items():
        assert abs(est - th.V[1][idx]) < 4 * se, (idx, est, se, th.V[1][idx])


def test_two_input_vertex_deeper_against_the_sampler():
    # layer 4 (tanh) and layer 3 (ReLU): V includes the cross-neuron term J V Jᵀ, leading order in
    # 1/n; at n = 256 the O(1/n) relative correction is below 3/n (ReLU diagonal: exactly 2.5/n).
    X = np.array([[1.0, 0.0], [0.6, 0.8]])
    for act, L, n, cb, cw in (("tanh", 4, 128, 0.1, 1.0), ("relu", 3, 256, 0.0, 2.0)):
        th = finite_width_theory(act, L, C_W=cw, C_b=cb, inputs=X)
        res = sample_ensemble(MLPConfig(act, n, L, C_W=cw, C_b=cb, input_dim=2), 20000, X, seed=3, progress=False)
        for idx, (est, se) in _n_cov_of_G(res, n).items():
            V = th.V[L - 1][idx]
            assert abs(est - V) < 4 * se + 3 * abs(V) / n, (act, idx, est, se, V)


def test_nlo_kernel_shift_is_seen_by_the_sampler():
    # tanh at criticality, n = 16, L = 8: E z² = K + K1/n + O(1/n²); K1/n is ~30 standard errors.
    n, L = 16, 8
    th = finite_width_theory("tanh", L, C_W=1.0, C_b=0.0)
    res = sample_ensemble(MLPConfig("tanh", n, L, C_W=1.0, C_b=0.0), 40000, [1.0], seed=5, progress=False)
    m, se = res.moment(2)
    assert abs(m[0] - th.second_moment(n)[-1]) < 4 * se[0]
    assert abs(m[0] - th.K[-1]) > 10 * se[0]


def test_result_object_round_trips_and_prints():
    th = finite_width_theory("tanh", 20, C_W=1.0, C_b=0.0)
    back = FiniteWidthTheory.from_dict(__import__("json").loads(th.to_json()))
    np.testing.assert_array_equal(back.V, th.V)
    text = str(th)
    assert "V/K^2" in text and text.count("\n") == 12  # header, rule, 10 rows (first and last five)


def test_bad_input_names_the_argument():
    with pytest.raises(InputError, match="`depth`"):
        finite_width_theory("relu", 0, C_W=2.0, C_b=0.0)
    with pytest.raises(InputError, match="`C_W`"):
        finite_width_theory("relu", 3, C_W=-1.0, C_b=0.0)
    with pytest.raises(InputError, match="`activation`"):
        finite_width_theory("relux", 3, C_W=2.0, C_b=0.0)
    with pytest.raises(InputError, match="`inputs`"):
        finite_width_theory("relu", 3, C_W=2.0, C_b=0.0, inputs=np.ones(3))
    with pytest.raises(InputError, match="`width`"):
        finite_width_theory("relu", 3, C_W=2.0, C_b=0.0).excess_kurtosis(0)
    with pytest.raises(NotPositiveDefiniteError):
        finite_width_theory("relu", 3, C_W=2.0, C_b=0.0, inputs=np.array([[1.0, 0.0], [2.0, 0.0]]))


def test_three_input_vertex_at_layer_two_is_exact_against_the_sampler():
    # entries such as V_(01)(02) need ⟨σ₀σ₁σ₀σ₂⟩, a three-dimensional Gaussian average
    X = np.array([[1.0, 0.0, 0.3], [0.2, 0.9, -0.4], [-0.5, 0.4, 0.8]])
    th = finite_width_theory("relu", 2, C_W=2.0, C_b=0.1, inputs=X)
    n = 16
    res = sample_ensemble(MLPConfig("relu", n, 2, C_W=2.0, C_b=0.1, input_dim=3), 20000, X, seed=13, progress=False)
    G = res.conditional_covariance
    pairs = [(a, b) for a in range(3) for b in range(a, 3)]
    for i, A in enumerate(pairs):
        for B in pairs[i:]:
            x, y = G[:, A[0], A[1]][:, None], G[:, B[0], B[1]][:, None]
            est, se = jackknife(lambda xy, x1, y1: n * (xy - x1 * y1), [x * y, x, y])
            assert abs(est[0] - th.V[1][A + B]) < 4 * se[0], (A, B, est, se, th.V[1][A + B])

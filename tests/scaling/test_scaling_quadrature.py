"""Gaussian quadrature against scipy.integrate.quad, closed forms and exact moments."""

import math

import numpy as np
import pytest
from scipy import integrate, special

from pft.scaling._activations import BUILTIN_ACTIVATIONS, resolve_activation
from pft.scaling._quadrature import expect, gaussian_expect, gaussian_rule, half_line_rule


def _quad_expect(f, K):
    # reference: adaptive quadrature on each half line (the kink of relu/abs/leaky is at 0)
    dens = lambda z: f(z) * math.exp(-z * z / (2 * K)) / math.sqrt(2 * math.pi * K)  # noqa: E731
    lo = integrate.quad(dens, -np.inf, 0.0, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
    hi = integrate.quad(dens, 0.0, np.inf, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
    return lo + hi


@pytest.mark.parametrize("name", [*BUILTIN_ACTIVATIONS, "leaky_relu:0.2"])
@pytest.mark.parametrize("K", [0.05, 1.0, 6.0])
def test_builtin_activations_against_scipy_quad(name, K):
    act = resolve_activation(name)
    s = lambda z: float(act.numpy(np.array([z]))[0])  # noqa: E731
    for g in (lambda z: s(z) ** 2, lambda z: s(z) ** 4, lambda z: s(z) ** 2 * z * z, lambda z: s(z)):
        want = _quad_expect(g, K)
        got = expect(lambda z: np.vectorize(g)(z), K)
        assert abs(got - want) <= 1e-12 * max(1.0, abs(want)), (name, K, got, want)


def test_half_line_rule_integrates_odd_and_even_powers_exactly():
    # ∫₀^∞ u^m e^{-u²/2} du = 2^((m-1)/2) Γ((m+1)/2); a 96-node rule is exact up to degree 191;
    # in float64 the large nodes carry ~1e-15 relative rounding, amplified by the power.
    u, w = half_line_rule(96, 0)
    for m in range(0, 31):  # degree 12 is the most the recursions need (σ⁴ and Hermite terms)
        exact = 2 ** ((m - 1) / 2) * math.gamma((m + 1) / 2)
        assert abs(w @ u**m / exact - 1) < 1e-12, m


def test_relu_moments_are_exact_including_odd_powers():
    # E relu(z)^p, z ~ N(0, K): K^(p/2) 2^(p/2) Γ((p+1)/2) / (2 √π)
    for p in range(1, 9):
        for K in (0.3, 2.0):
            exact = K ** (p / 2) * 2 ** (p / 2) * math.gamma((p + 1) / 2) / (2 * math.sqrt(math.pi))
            got = expect(lambda z: np.maximum(z, 0.0) ** p, K)
            assert abs(got / exact - 1) < 1e-13, (p, K)


@pytest.mark.parametrize("rho", [-0.95, -0.3, 0.0, 0.5, 0.99])
def test_two_dimensional_relu_is_the_arc_cosine_kernel(rho):
    # Cho & Saul (2009): E relu(u) relu(v) = √(K11 K22)/(2π) (sin θ + (π − θ) cos θ), cos θ = ρ
    K11, K22 = 1.7, 0.6
    K = np.array([[K11, rho * math.sqrt(K11 * K22)], [rho * math.sqrt(K11 * K22), K22]])
    z, w = gaussian_rule(K)
    got = w @ (np.maximum(z[:, 0], 0) * np.maximum(z[:, 1], 0))
    th = math.acos(rho)
    exact = math.sqrt(K11 * K22) / (2 * math.pi) * (math.sin(th) + (math.pi - th) * math.cos(th))
    assert abs(got - exact) < 1e-14


def test_two_dimensional_erf_is_the_arcsine_kernel():
    # Williams (1997): E erf(u) erf(v) = (2/π) arcsin(2 K12 / √((1 + 2 K11)(1 + 2 K22)))
    K = np.array([[0.8, -0.5], [-0.5, 1.9]])
    z, w = gaussian_rule(K)
    got = w @ (special.erf(z[:, 0]) * special.erf(z[:, 1]))
    exact = 2 / math.pi * math.asin(2 * K[0, 1] / math.sqrt((1 + 2 * K[0, 0]) * (1 + 2 * K[1, 1])))
    assert abs(got - exact) < 1e-13


def test_two_dimensional_smooth_against_scipy_dblquad():
    K = np.array([[1.2, 0.4], [0.4, 0.7]])
    P = np.linalg.inv(K)
    norm = 1 / (2 * math.pi * math.sqrt(np.linalg.det(K)))
    f = lambda a, b: np.tanh(a) ** 2 * special.expit(b) * a  # noqa: E731
    dens = lambda b, a: f(a, b) * norm * math.exp(-0.5 * (P[0, 0] * a * a + 2 * P[0, 1] * a * b + P[1, 1] * b * b))  # noqa: E731
    want = integrate.dblquad(dens, -12, 12, -12, 12, epsabs=1e-13, epsrel=1e-12)[0]
    z, w = gaussian_rule(K)
    assert abs(w @ f(z[:, 0], z[:, 1]) - want) < 1e-11


def test_three_and_four_dimensional_rules_match_isserlis():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    K = A @ A.T + 0.5 * np.eye(4)
    got = gaussian_expect(lambda z: z[:, 0] * z[:, 1] * z[:, 2] * z[:, 3], K)
    exact = K[0, 1] * K[2, 3] + K[0, 2] * K[1, 3] + K[0, 3] * K[1, 2]
    assert abs(got - exact) < 1e-12 * abs(K).max() ** 2
    got3 = gaussian_expect(lambda z: z[:, 0] ** 2 * z[:, 1] * z[:, 2], K[:3, :3])
    assert abs(got3 - (K[0, 0] * K[1, 2] + 2 * K[0, 1] * K[0, 2])) < 1e-12 * abs(K).max() ** 2


def test_three_dimensional_relu_against_scipy_tplquad():
    # E Π relu(z_a) = ∫ over the positive orthant of z₁z₂z₃ φ_K(z): smooth there, so tplquad is sharp
    K = np.array([[1.0, 0.5, -0.3], [0.5, 1.5, 0.2], [-0.3, 0.2, 0.8]])
    P = np.linalg.inv(K)
    c = 1 / math.sqrt((2 * math.pi) ** 3 * np.linalg.det(K))

    def dens(z3, z2, z1):
        z = np.array([z1, z2, z3])
        return z1 * z2 * z3 * c * math.exp(-0.5 * z @ P @ z)

    want = integrate.tplquad(dens, 0, 10, 0, 10, 0, 10, epsabs=1e-13, epsrel=1e-11)[0]
    got = gaussian_expect(lambda z: np.prod(np.maximum(z, 0), axis=1), K)
    assert abs(got - want) < 1e-12


def test_four_dimensional_kinked_rule_has_converged(monkeypatch):
    # the default nodes against a finer rule (a different node set at every level)
    import pft.scaling._quadrature as q

    A = np.random.default_rng(2).normal(size=(4, 4))
    K = A @ A.T / 4 + 0.1 * np.eye(4)
    f = lambda z: np.prod(np.abs(z), axis=1) * np.maximum(z[:, 2], 0)  # noqa: E731
    coarse = gaussian_expect(f, K)
    monkeypatch.setitem(q.N_NESTED, 4, (16, 52, 40))
    fine = gaussian_expect(f, K)
    assert abs(coarse - fine) < 1e-11 * abs(fine)


def test_singular_kernels_fall_back_and_stay_exact_for_polynomials():
    K = np.array([[1.0, 0.3, 1.0], [0.3, 2.0, 0.3], [1.0, 0.3, 1.0]])  # z₃ = z₁
    got = gaussian_expect(lambda z: z[:, 0] * z[:, 1] * z[:, 2] * z[:, 1], K)
    assert abs(got - (K[0, 2] * K[1, 1] + 2 * K[0, 1] * K[1, 2])) < 1e-12


def test_degenerate_two_by_two_block_falls_back_to_one_dimension():
    K = np.array([[2.0, 2.0], [2.0, 2.0]])  # z2 = z1
    z, w = gaussian_rule(K)
    assert abs(w @ (np.maximum(z[:, 0], 0) * np.maximum(z[:, 1], 0)) - 1.0) < 1e-14  # E relu(z)² = K/2


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(k11=st.floats(1e-3, 1e3), k22=st.floats(1e-3, 1e3), rho=st.floats(-1.0, 1.0),
       slope=st.floats(-2.0, 2.0))
def test_two_dimensional_leaky_relu_is_exact_for_any_kernel(k11, k22, rho, slope):
    # σ = leaky(a) = relu(z) + a min(z, 0); E σ(u)σ(v) from the arc-cosine kernel and symmetry:
    # E relu(u)relu(v) = E relu(−u)relu(−v) = k(ρ), E relu(u)relu(−v) = k(−ρ) with sign flips.
    K = np.array([[k11, rho * math.sqrt(k11 * k22)], [rho * math.sqrt(k11 * k22), k22]])
    z, w = gaussian_rule(K)
    a = slope
    s = np.where(z > 0, z, a * z)
    got = w @ (s[:, 0] * s[:, 1])
    th = math.acos(max(-1.0, min(1.0, rho)))
    same = math.sqrt(k11 * k22) / (2 * math.pi) * (math.sin(th) + (math.pi - th) * math.cos(th))
    # E u v = ρ√(k11k22) = E[ (relu(u) − relu(−u)) (relu(v) − relu(−v)) ] = 2 same − 2 cross
    cross = same - 0.5 * rho * math.sqrt(k11 * k22)  # E relu(u) relu(−v)
    exact = same + a * a * same - 2 * a * cross
    assert abs(got - exact) <= 1e-12 * math.sqrt(k11 * k22) * (1 + a * a)


def test_gaussian_rule_refuses_more_than_four_dimensions():
    from pft.errors import InputError

    with pytest.raises(InputError, match=r"^`K` must be a \(d, d\) covariance with d ≤ 4; got shape \(5, 5\)\.$"):
        gaussian_rule(np.eye(5))

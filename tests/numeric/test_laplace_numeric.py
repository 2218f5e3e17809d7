"""pft.numeric.laplace: equal to the exact expansion, closed forms at d = 100, refusals."""

import time

import numpy as np
import pytest
import sympy
import torch

from pft.errors import InputError, NotPositiveDefiniteError, OutOfReachError
from pft.numeric import laplace
from pft.symbolic import laplace_expansion

R = sympy.Rational


def _cases():
    x, y, z = sympy.symbols("x y z", real=True)
    one = (
        (x,),
        x**2 / 2 + R(3, 5) * x**3 / 6 + R(1, 2) * x**4 / 24 - R(1, 7) * x**5 / 120 + R(1, 3) * x**6 / 720,
        lambda v: v[0] ** 2 / 2 + 0.6 * v[0] ** 3 / 6 + 0.5 * v[0] ** 4 / 24 - v[0] ** 5 / 840 + v[0] ** 6 / 2160,
        3,
    )
    two = (
        (x, y),
        x**2 + x * y / 2 + 3 * y**2 / 4 + x**3 / 5 - x * y**2 / 4 + y**3 / 7 + x**4 / 10 + x**2 * y**2 / 6 + y**4 / 8,
        lambda v: v[0] ** 2 + v[0] * v[1] / 2 + 0.75 * v[1] ** 2 + v[0] ** 3 / 5 - v[0] * v[1] ** 2 / 4
        + v[1] ** 3 / 7 + v[0] ** 4 / 10 + v[0] ** 2 * v[1] ** 2 / 6 + v[1] ** 4 / 8,
        2,
    )
    three = (
        (x, y, z),
        x**2 + 2 * y**2 + 3 * z**2 / 2 + 2 * x * y / 3 - y * z / 2 + 2 * x * z / 5 + x**3 / 5 - x * y * z / 5
        + y**2 * z / 6 + z**3 / 8 + (x**4 + y**4 + z**4) / 12 + x**2 * z**2 / 10 + sympy.exp(x / 3) - x / 3,
        lambda v: v[0] ** 2 + 2 * v[1] ** 2 + 1.5 * v[2] ** 2 + 2 * v[0] * v[1] / 3 - v[1] * v[2] / 2
        + 0.4 * v[0] * v[2] + v[0] ** 3 / 5 - v[0] * v[1] * v[2] / 5 + v[1] ** 2 * v[2] / 6 + v[2] ** 3 / 8
        + (v[0] ** 4 + v[1] ** 4 + v[2] ** 4) / 12 + v[0] ** 2 * v[2] ** 2 / 10 + torch.exp(v[0] / 3) - v[0] / 3,
        2,
    )
    return {"1d": one, "2d": two, "3d": three}


def _float(m):
    return np.array(np.array(m.tolist(), dtype=object), dtype=float)


@pytest.mark.parametrize("key", ["1d", "2d", "3d"])
def test_equals_the_exact_expansion(key):
    variables, action, fn, order = _cases()[key]
    d = len(variables)
    exact = laplace_expansion(action, variables, order=order, point=(0,) * d)
    num = laplace(fn, np.full(d, 0.05), order=order)  # started off the minimum: Newton refines it
    np.testing.assert_allclose(num.point, 0.0, atol=1e-14)
    np.testing.assert_allclose(num.hessian, _float(exact.hessian), rtol=1e-12)
    assert num.log_det_hessian == pytest.approx(float(exact.log_det_hessian), abs=1e-12)
    for c_num, c_exact in zip(num.coefficients, exact.coefficients):
        assert c_num == pytest.approx(float(c_exact), rel=1e-10, abs=1e-12)
    for k in exact.terms:  # diagram by diagram, same plans
        for tn, te in zip(num.terms[k], exact.terms[k]):
            assert tn.plan == te.plan
            assert tn.value == pytest.approx(float(te.value), rel=1e-10, abs=1e-12)
    for k, (a, b) in enumerate(zip(num.mean(order).corrections, exact.mean(order).corrections)):
        np.testing.assert_allclose(a, _float(b).ravel(), rtol=1e-10, atol=1e-12)
    for a, b in zip(num.covariance(order).corrections, exact.covariance(order).corrections):
        np.testing.assert_allclose(a, _float(b), rtol=1e-10, atol=1e-12)
    assert num.log_partition(50.0) == pytest.approx(float(exact.log_partition(50)), rel=1e-12)


def _ridge_action(d, m, seed):
    """S = ½ xᵀAx + Σ_j (a_j u_j³/6 + b_j u_j⁴/24), u = W x: λ_k = Σ_j φ_j^(k) w_j^⊗k at x* = 0."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    A = A @ A.T + np.eye(d)
    W = rng.normal(size=(m, d)) / np.sqrt(d)
    a = rng.normal(size=m) * 0.5
    b = np.abs(rng.normal(size=m))
    At, Wt, at, bt = (torch.tensor(v) for v in (A, W, a, b))

    def fn(x):
        u = Wt @ x
        return 0.5 * x @ At @ x + (at * u**3 / 6 + bt * u**4 / 24).sum()

    return fn, A, W, a, b


def test_d100_order1_matches_closed_form():
    # With M = W G Wᵀ: docs/math.md's c1 becomes -(1/8) Σ b_j M_jj² + (1/8) (a∘diag M)ᵀ M (a∘diag M)
    # + (1/12) aᵀ (M∘M∘M) a, and ⟨y⟩₁ = -½ G Wᵀ (a∘diag M): an independent truth at d = 100.
    d, m = 100, 40
    fn, A, W, a, b = _ridge_action(d, m, 0)
    start = time.perf_counter()
    res = laplace(fn, np.zeros(d), order=1)
    elapsed = time.perf_counter() - start
    G = np.linalg.inv(A)
    M = W @ G @ W.T
    dm = np.diag(M)
    c1 = -np.sum(b * dm**2) / 8 + (a * dm) @ M @ (a * dm) / 8 + a @ (M**3) @ a / 12
    assert res.coefficients[0] == pytest.approx(c1, rel=1e-10)
    np.testing.assert_allclose(res.mean(1).corrections[0], -0.5 * G @ W.T @ (a * dm), rtol=1e-9, atol=1e-13)
    assert 3 not in res.vertices or res.vertices[3].shape == (d, d, d)
    assert 4 not in res.vertices  # the figure-eight never formed λ_4
    assert elapsed < 60  # benchmarks/bench_laplace.py measures it properly (seconds on a CPU)


def test_d10_order2_matches_separable_truth_in_skewed_coordinates():
    # S(y) = Σ_i s_i((B y)_i) with s_i(x) = x²/2 + a_i x³/6 + b_i x⁴/24 and a dense B: the c_k
    # are invariant under the linear change x = B y (Z_y = Z_x / |det B|), so
    # c_k = Σ_i c_k(s_i) with the 1-D series c1 = 5a²/24 - b/8, c2 = 5a⁴/16 - 25a²b/48 + b²/12
    # (checked against the exact Gaussian-integral series in tests/symbolic/test_laplace.py).
    # The Hessian Bᵀ B and every vertex tensor are dense. Moments: <y> = B⁻¹<x>, Cov(y) = B⁻¹ Cov(x) B⁻ᵀ.
    d = 10
    rng = np.random.default_rng(7)
    B = np.eye(d) + rng.normal(size=(d, d)) / np.sqrt(d)
    a = rng.normal(size=d) * 0.7
    b = np.abs(rng.normal(size=d))
    Bt, at, bt = torch.tensor(B), torch.tensor(a), torch.tensor(b)

    def fn(y):
        x = Bt @ y
        return (x**2 / 2 + at * x**3 / 6 + bt * x**4 / 24).sum()

    start = time.perf_counter()
    res = laplace(fn, np.zeros(d), order=2)
    assert time.perf_counter() - start < 60
    c1 = np.sum(5 * a**2 / 24 - b / 8)
    c2 = np.sum(5 * a**4 / 16 - 25 * a**2 * b / 48 + b**2 / 12)
    assert res.coefficients[0] == pytest.approx(c1, rel=1e-10)
    assert res.coefficients[1] == pytest.approx(c2, rel=1e-10)
    Binv = np.linalg.inv(B)
    # 1-D: <x>_1 = -a/2, Cov(x)_2 = a² - b/2 (exact 1-D series, see the symbolic tests)
    np.testing.assert_allclose(res.mean(1).corrections[0], Binv @ (-a / 2), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.covariance(2).corrections[1], Binv @ np.diag(a**2 - b / 2) @ Binv.T, rtol=1e-9, atol=1e-12)


def test_out_of_reach_is_refused_before_memory_runs_out():
    fn, *_ = _ridge_action(100, 10, 2)
    start = time.perf_counter()
    with pytest.raises(OutOfReachError, match="max_elements"):
        laplace(fn, np.zeros(100), order=2)
    assert time.perf_counter() - start < 30
    fn3, *_ = _ridge_action(30, 5, 3)
    with pytest.raises(OutOfReachError, match="max_elements"):
        laplace(fn3, np.zeros(30), order=1, max_elements=10_000)


def test_saddle_and_degenerate_minimum_are_refused():
    with pytest.raises(NotPositiveDefiniteError, match="smallest eigenvalues") as info:
        laplace(lambda v: v[0] ** 2 / 2 - v[1] ** 2 / 2 + v[1] ** 4, np.zeros(2), order=1)
    assert "-1" in str(info.value) and "does not exist" in str(info.value)
    with pytest.raises(NotPositiveDefiniteError, match="degenerate"):
        laplace(lambda v: (v**4).sum(), np.zeros(1), order=1)


def test_inputs_and_bad_arguments():
    x0 = np.array([0.3])
    laplace(lambda v: (v**2).sum() / 2 + (v**3).sum(), x0, order=1)
    np.testing.assert_array_equal(x0, [0.3])
    with pytest.raises(InputError, match=r"^`fn` must return a scalar tensor \(one element\); got Tensor of shape \(2,\)\.$"):
        laplace(lambda v: v * 2, np.zeros(2), order=1)
    with pytest.raises(InputError, match=r"^`fn` must be callable \(x -> scalar tensor\); got int\.$"):
        laplace(3, np.zeros(2), order=1)
    with pytest.raises(InputError, match=r"^`x_star` must be a finite, non-empty 1-D array \(d,\); got shape \(2, 2\)\.$"):
        laplace(lambda v: (v**2).sum(), np.zeros((2, 2)), order=1)
    with pytest.raises(InputError, match=r"^`x_star` must be a finite, non-empty 1-D array \(d,\); got shape \(2,\) with 1 NaN/inf entries\.$"):
        laplace(lambda v: (v**2).sum(), np.array([0.0, np.nan]), order=1)
    with pytest.raises(InputError, match=r"^`fn` must be finite at `x_star`; got inf\.$"):
        laplace(lambda v: (v**2).sum() / 0.0, np.ones(2), order=1)
    with pytest.raises(InputError, match="`order`"):
        laplace(lambda v: (v**2).sum(), np.zeros(2), order=-1)
    with pytest.raises(InputError, match=r"^`x_star` must be near a critical point of `fn`; got a point where"):
        laplace(lambda v: v.sum(), np.zeros(2), order=1)


def test_result_table_shows_term_sizes_at_n():
    res = laplace(lambda v: v[0] - torch.log(v[0]), 1.0, order=2, n=10.0)
    text = str(res)
    assert "value·n^-k (n=10)" in text and "λ3² G³" in text
    assert res.log_partition() == pytest.approx(float(sympy.loggamma(11) - 11 * sympy.log(10)), abs=1e-5)


def test_numeric_result_round_trips_json():
    from pft.symbolic import LaplaceExpansion

    res = laplace(lambda v: (v**2).sum() / 2 + v[0] ** 3 / 6 + v[0] * v[1] ** 2 / 4, np.zeros(2), order=2)
    back = LaplaceExpansion.from_json(res.to_json())
    assert back.to_dict() == res.to_dict()
    assert back.coefficients == res.coefficients and not back.exact


def test_tensor_minimum_is_accepted_without_warnings():
    # S = Σ x²/2 + x⁴/24 per coordinate: c₁ = −(1/8) λ₄ G G per dimension = −3/8 for d = 3.
    import torch

    from pft.numeric import laplace as numeric_laplace

    x = torch.zeros(3, dtype=torch.float64)
    res = numeric_laplace(lambda v: (v**2).sum() / 2 + (v**4).sum() / 24, x, order=1)
    assert abs(res.coefficients[0] + 3 / 8) < 1e-12
    assert torch.equal(x, torch.zeros(3, dtype=torch.float64))

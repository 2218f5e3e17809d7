"""Laplace expansion against independent truths: exact Gaussian-integral series, Stirling,
quadrature at several n (remainders fitted as log-log slopes), docs/math.md's c1 formula."""

from math import factorial

import numpy as np
import pytest
import sympy
from scipy import integrate

from pft.errors import InputError, NotPositiveDefiniteError
from pft.symbolic import contraction_plan, laplace_expansion, vacuum_diagrams

# n = 40 … 320: at n = 20 the 2-D c1 remainder is still pre-asymptotic (slope -1.76 on 20…160).
# Measured slopes on 40…320 (this commit): 1-D log Z remainders after 0..3 terms -0.97 -2.00
# -3.08 -3.99; 2-D -1.00 -1.89 -2.97, mean -1.98 -3.01, cov -2.02 -2.91; 3-D -1.00 -1.97
# -2.99, mean -2.00 -3.01, cov -2.00 -2.98.
NS = np.array([40.0, 80.0, 160.0, 320.0])


def _slope(ns, values):
    return np.polyfit(np.log(ns), np.log(np.abs(values)), 1)[0]


# ------------------------------------------------------------------ 1-D exact series
def _exact_series_1d(couplings, orders):
    """c_1..c_orders of log ∫ exp(-n S) for S = x²/2 + Σ a_k x^k/k!, by term-by-term Gaussian
    integration: with x = y/√n and g = n^(-1/2), n S = y²/2 + Σ a_k g^(k-2) y^k/k!, so
    log Z - leading = log E[exp(-Σ a_k g^(k-2) y^k/k!)] under y ~ N(0, 1); expand in g, replace
    y^m by (m-1)!!, take the log series. Independent of diagrams."""
    g, y = sympy.symbols("g y")
    top = 2 * orders
    potential = sum(a * g ** (k - 2) * y**k / factorial(k) for k, a in couplings.items())

    def truncate(expr):
        p = sympy.Poly(sympy.expand(expr), g)
        return sum(c * g**m for (m,), c in p.terms() if m <= top)

    series, power = sympy.Integer(1), sympy.Integer(1)
    for j in range(1, top + 1):
        power = truncate(power * -potential)
        series += power / factorial(j)
    poly = sympy.Poly(sympy.expand(series), y)
    expectation = sum(c * (sympy.factorial2(m - 1) if m % 2 == 0 else 0) for (m,), c in poly.terms())
    expectation = sympy.expand(expectation)
    log_series = sympy.expand(sympy.series(sympy.log(expectation), g, 0, top + 1).removeO())
    assert all(sympy.expand(log_series.coeff(g, 2 * m + 1)) == 0 for m in range(orders))
    return [sympy.expand(log_series.coeff(g, 2 * m)) for m in range(1, orders + 1)]


def test_one_dimensional_coefficients_equal_exact_gaussian_series():
    x = sympy.Symbol("x", real=True)
    a = {k: sympy.Symbol(f"a{k}", real=True) for k in range(3, 9)}
    action = x**2 / 2 + sum(a[k] * x**k / factorial(k) for k in a)
    got = laplace_expansion(action, x, order=3, point=0).coefficients
    want = _exact_series_1d(a, 3)
    for k, (c, w) in enumerate(zip(got, want), start=1):
        assert sympy.expand(c - w) == 0, (k, c, w)
    # docs/math.md §1: c1 = 5 a3²/24 - a4/8
    assert sympy.expand(got[0] - (5 * a[3] ** 2 / 24 - a[4] / 8)) == 0


def test_stirling_series():
    # ∫₀^∞ exp(-n(x - log x)) dx = Γ(n+1)/n^(n+1): c_k are Stirling's 1/12, 0, -1/360, 0.
    x = sympy.Symbol("x", positive=True)
    e = laplace_expansion(x - sympy.log(x), x, order=3)
    assert e.coefficients == (sympy.Rational(1, 12), 0, sympy.Rational(-1, 360))
    assert e.point[0] == 1 and e.action_value == 1
    n = 30
    exact = float(sympy.loggamma(n + 1) - (n + 1) * sympy.log(n))
    assert float(e.log_partition(n)) == pytest.approx(exact, abs=1e-9)  # next term 1/(1260 n^5) ~ 3e-11
    # x ~ Gamma(shape n+1, rate n) exactly: <x> = 1 + 1/n, Var(x) = 1/n + 1/n²
    assert list(e.mean(3).corrections) == [sympy.Matrix([1]), sympy.Matrix([0]), sympy.Matrix([0])]
    assert list(e.covariance(3).corrections) == [sympy.Matrix([[1]]), sympy.Matrix([[1]]), sympy.Matrix([[0]])]


def test_one_dimensional_quadrature_remainders_fall_like_n_to_minus_k_plus_one():
    x = sympy.Symbol("x", real=True)
    a, b = sympy.Rational(3, 5), sympy.Rational(1, 2)  # ½ + a x/6 + b x²/24 > 0: x = 0 is the global minimum
    e = laplace_expansion(x**2 / 2 + a * x**3 / 6 + b * x**4 / 24, x, order=3, point=0)
    cs = [float(c) for c in e.coefficients]
    af, bf = float(a), float(b)
    remainders = {k: [] for k in range(4)}
    for n in NS:
        # u = √n x: ∫ exp(-n S) dx = n^(-1/2) ∫ exp(-u²/2 - a u³/(6√n) - b u⁴/(24 n)) du
        f = lambda u, n=n: np.exp(-(u**2) / 2 - af * u**3 / (6 * np.sqrt(n)) - bf * u**4 / (24 * n))
        value = integrate.quad(f, -np.inf, np.inf, epsabs=0, epsrel=2e-14, limit=200)[0]
        series = np.log(value) - 0.5 * np.log(2 * np.pi)  # = Σ c_k n^-k
        for k in range(4):
            remainders[k].append(series - sum(cs[j] * n ** -(j + 1) for j in range(k)))
    for k in range(4):
        slope = _slope(NS, remainders[k])
        assert abs(slope + (k + 1)) < 0.25, (k, slope, remainders[k])


# ------------------------------------------------------------------ 2-D and 3-D
def _actions():
    x, y, z = sympy.symbols("x y z", real=True)
    r = sympy.Rational
    two = (
        (x, y),
        x**2 + x * y / 2 + 3 * y**2 / 4 + x**3 / 5 - x * y**2 / 4 + y**3 / 7 + x**4 / 10 + x**2 * y**2 / 6 + y**4 / 8,
    )
    three = (
        (x, y, z),
        x**2 + 2 * y**2 + 3 * z**2 / 2 + 2 * x * y / 3 - y * z / 2 + 2 * x * z / 5
        + r(1, 5) * x**3 - r(1, 5) * x * y * z + r(1, 6) * y**2 * z + r(1, 8) * z**3
        + r(1, 12) * (x**4 + y**4 + z**4) + r(1, 10) * x**2 * z**2,
    )
    return {"2d": two, "3d": three}


def _numpy_action(variables, action):
    # Test-side evaluation of the sympy action through its polynomial terms (no lambdify).
    poly = sympy.Poly(action, *variables)
    terms = [(np.array(m), float(c)) for m, c in poly.terms()]

    top = max(int(m.max()) for m, _ in terms)

    def f(x):  # x: (..., d)
        powers = [[np.ones(x.shape[:-1])] for _ in range(x.shape[-1])]
        for j, pw in enumerate(powers):
            for _ in range(top):
                pw.append(pw[-1] * x[..., j])
        out = 0.0
        for m, c in terms:
            term = c
            for j, p in enumerate(m):
                if p:
                    term = term * powers[j][p]
            out = out + term
        return out

    return f


def _quadrature(n, f, L, d):
    """∫ exp(-n S(L u/√n)) du and the mean and covariance of u (S(0) = 0), by the trapezoid rule
    on a ±9 grid with step 0.25 in the whitened variable u. For an entire, Gaussian-decaying
    integrand the rule converges exponentially in 1/h; test_quadrature_is_converged checks it
    against adaptive dblquad (2-D) and a finer step (3-D). (Adaptive cubature in 3-D,
    scipy.integrate.cubature, needed minutes per integral at this tolerance.)"""
    scale = L / np.sqrt(n)
    return _trapezoid(lambda u: np.exp(-n * f(u @ scale.T)), d, 0.25)


def _trapezoid(density, d, h):
    grid = np.arange(-9, 9 + h / 2, h)
    mesh = np.stack(np.meshgrid(*([grid] * d), indexing="ij"), axis=-1).reshape(-1, d)
    w = density(mesh) * h**d
    mass = w.sum()
    mean = (w[:, None] * mesh).sum(0) / mass
    cen = mesh - mean
    cov = np.einsum("n,ni,nj->ij", w, cen, cen) / mass
    return mass, mean, cov


@pytest.fixture(scope="module", params=["2d", "3d"])
def case(request):
    variables, action = _actions()[request.param]
    d = len(variables)
    f = _numpy_action(variables, action)
    # x = 0 is the global minimum: no lower value on a coarse grid of the box [-6, 6]^d
    grid = np.linspace(-6, 6, 25)
    mesh = np.stack(np.meshgrid(*([grid] * d)), -1).reshape(-1, d)
    assert f(mesh).min() >= -1e-12
    # 2-D: the minimum is solved for; 3-D: given (sympy.solve on three cubics takes ~15 s)
    e = laplace_expansion(action, variables, order=2, point=None if d == 2 else (0,) * d)
    assert list(e.point) == [0] * d
    G = np.array(e.propagator.tolist(), dtype=float)
    L = np.linalg.cholesky(G)
    quad = [_quadrature(n, f, L, d) for n in NS]
    mean_exp, cov_exp = e.mean(2), e.covariance(2)
    return dict(e=e, d=d, L=L, G=G, quad=quad, mean=mean_exp, cov=cov_exp, f=f, key=request.param)


def test_hessian_is_non_diagonal_and_couplings_present(case):
    e = case["e"]
    assert any(e.hessian[i, j] != 0 for i in range(case["d"]) for j in range(case["d"]) if i != j)
    assert any(v != 0 for v in e.vertices[3].tolist() for v in np.ravel(v))


def test_multivariate_c1_and_c2_against_quadrature(case):
    e, d, L = case["e"], case["d"], case["L"]
    c = [float(v) for v in e.coefficients]
    rem = {0: [], 1: [], 2: []}
    for n, (mass, _, _) in zip(NS, case["quad"]):
        series = np.log(mass) - 0.5 * d * np.log(2 * np.pi)  # log det L and n^(-d/2) cancel
        for k in range(3):
            rem[k].append(series - sum(c[j] * n ** -(j + 1) for j in range(k)))
    for k in range(3):
        assert abs(_slope(NS, rem[k]) + (k + 1)) < 0.2, (k, rem[k])


def test_mean_and_covariance_corrections_against_quadrature(case):
    L = case["L"]
    m = [np.array(v.tolist(), dtype=float).ravel() for v in case["mean"].corrections]
    C = [np.array(v.tolist(), dtype=float) for v in case["cov"].corrections]
    np.testing.assert_allclose(C[0], case["G"], rtol=1e-14)
    mean_rem = {1: [], 2: []}
    cov_rem = {1: [], 2: []}
    for n, (_, mu, cu) in zip(NS, case["quad"]):
        mean_x = L @ mu / np.sqrt(n)  # x* = 0
        cov_x = L @ cu @ L.T / n
        for k in (1, 2):
            mean_rem[k].append(np.linalg.norm(mean_x - sum(m[j] * n ** -(j + 1) for j in range(k))))
            cov_rem[k].append(np.linalg.norm(cov_x - sum(C[j] * n ** -(j + 1) for j in range(k))))
    for k in (1, 2):
        assert abs(_slope(NS, mean_rem[k]) + (k + 1)) < 0.2, ("mean", k, mean_rem[k])
        assert abs(_slope(NS, cov_rem[k]) + (k + 1)) < 0.2, ("cov", k, cov_rem[k])


def test_quadrature_is_converged(case):
    n, d = NS[0], case["d"]
    scale = case["L"] / np.sqrt(n)
    density = lambda u: np.exp(-n * case["f"](u @ scale.T))
    mass, mean, cov = case["quad"][0]
    if d == 2:
        adaptive = integrate.dblquad(lambda b, a: density(np.array([a, b])), -12, 12, -12, 12, epsabs=0, epsrel=1e-10)
        assert abs(mass - adaptive[0]) < 1e-9 * mass
    fine = _trapezoid(density, d, 0.2)
    assert abs(np.log(mass / fine[0])) < 1e-12
    np.testing.assert_allclose(mean, fine[1], atol=1e-12)
    np.testing.assert_allclose(cov, fine[2], atol=1e-12)


def test_c1_and_mean_match_math_md_formulas(case):
    # docs/math.md §1: c1 = -(1/8) λ_ijkl G_ij G_kl + (1/8) λ_ijk λ_lmn G_ij G_kl G_mn
    #                  + (1/12) λ_ijk λ_lmn G_il G_jm G_kn;  ⟨y⟩_1 = -(1/2) G_ij λ_jkl G_kl.
    # Written with explicit loops over sympy entries, independent of the plans.
    e, d = case["e"], case["d"]
    l3, l4, G = e.vertices[3], e.vertices[4], e.propagator
    r = range(d)
    c1 = sympy.Integer(0)
    for i in r:
        for j in r:
            for k in r:
                for l in r:
                    c1 -= sympy.Rational(1, 8) * l4[i, j, k, l] * G[i, j] * G[k, l]
                    for m in r:
                        for q in r:
                            c1 += sympy.Rational(1, 8) * l3[i, j, k] * l3[l, m, q] * G[i, j] * G[k, l] * G[m, q]
                            c1 += sympy.Rational(1, 12) * l3[i, j, k] * l3[l, m, q] * G[i, l] * G[j, m] * G[k, q]
    assert sympy.simplify(c1 - e.coefficients[0]) == 0
    m1 = [-sympy.Rational(1, 2) * sum(G[i, j] * l3[j, k, l] * G[k, l] for j in r for k in r for l in r) for i in r]
    assert [sympy.simplify(a - b) for a, b in zip(m1, case["mean"].corrections[0])] == [0] * d


# ------------------------------------------------------------------ errors, plans, results
@pytest.mark.parametrize(
    "action, where",
    [("x**4", "degenerate"), ("-x**2/2 + x**4", "saddle")],
)
def test_not_positive_definite_hessian_is_refused(action, where):
    x = sympy.Symbol("x", real=True)
    S = sympy.sympify(action, locals={"x": x})
    with pytest.raises(NotPositiveDefiniteError, match="smallest eigenvalues") as info:
        laplace_expansion(S, x, order=1, point=0)
    assert "does not exist" in str(info.value)


def test_saddle_in_two_dimensions_names_the_negative_eigenvalue():
    x, y = sympy.symbols("x y", real=True)
    with pytest.raises(NotPositiveDefiniteError, match=r"-1\."):
        laplace_expansion(x**2 / 2 - y**2 / 2 + y**4, [x, y], order=1, point=(0, 0))


def test_point_must_be_a_critical_point_and_solver_finds_the_minimum():
    x = sympy.Symbol("x", real=True)
    with pytest.raises(InputError, match=r"`point` must be a critical point of the action; got \[1\], where the gradient is \[3/2\]\."):
        laplace_expansion(x**2 / 2 + x**3 / 6, x, order=1, point=1)
    # (x - 2)² + (x - 2)³/6 ... minimum at 2, solved for
    e = laplace_expansion((x - 2) ** 2 + (x - 2) ** 4, x, order=1)
    assert e.point[0] == 2 and e.hessian[0, 0] == 2


def test_symbolic_couplings_stay_symbolic():
    x, a, b = sympy.symbols("x a b", real=True)
    e = laplace_expansion(x**2 / 2 + a * x**3 / 6 + b * x**4 / 24, x, order=2)
    assert sympy.expand(e.coefficients[1] - (5 * a**4 / 16 - 25 * a**2 * b / 48 + b**2 / 12)) == sympy.expand(
        _exact_series_1d({3: a, 4: b}, 2)[1] - (5 * a**4 / 16 - 25 * a**2 * b / 48 + b**2 / 12)
    )
    assert sympy.expand(e.coefficients[1] - _exact_series_1d({3: a, 4: b}, 2)[1]) == 0


def test_terms_sum_to_the_coefficients_and_each_has_its_plan():
    x = sympy.Symbol("x", real=True)
    e = laplace_expansion(x**2 / 2 + x**3 / 3 + x**4 / 5, x, order=2, point=0)
    for k, terms in e.terms.items():
        assert sum(t.value for t in terms) == e.coefficients[k - 1]
        for t in terms:
            assert t.plan == contraction_plan(t.diagram)
            assert t.plan.n_power == -k
    assert len(e.terms[1]) == 3 and len(e.terms[2]) == 15


def test_plan_value_against_hand_contraction():
    # theta diagram: 1/12 λ_abc λ_def G_ad G_be G_cf with random tensors, by explicit loops.
    rng = np.random.default_rng(0)
    d = 3
    l3 = rng.normal(size=(d, d, d))
    l3 = sum(np.transpose(l3, p) for p in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]) / 6
    a = rng.normal(size=(d, d))
    G = a @ a.T + np.eye(d)
    theta = [ds for ds in vacuum_diagrams((3,), loops=2) if ds.edges == ((0, 1),) * 3][0]
    plan = contraction_plan(theta)
    want = 0.0
    for idx in np.ndindex(*(d,) * 6):
        i, j, k, l, m, q = idx
        want += l3[i, j, k] * l3[l, m, q] * G[i, l] * G[j, m] * G[k, q]
    got = plan.evaluate(lambda op: G if op.kind == "propagator" else l3)
    assert got == pytest.approx(want / 12, rel=1e-12)


def test_result_prints_a_table_and_round_trips_json():
    import json

    x = sympy.Symbol("x", real=True)
    e = laplace_expansion(x**2 / 2 + x**3 / 6 + x**4 / 24, x, order=1, point=0)
    text = str(e)
    assert "c1 = 1/12" in text and "λ3² G³" in text and "1/|Aut|" in text
    d = json.loads(e.to_json())
    assert d["coefficients"] == ["1/12"] and len(d["terms"]["1"]) == 3


def test_bad_arguments_are_named():
    x = sympy.Symbol("x", real=True)
    with pytest.raises(InputError, match="`order`"):
        laplace_expansion(x**2, x, order=-1)
    with pytest.raises(InputError, match=r"^`action` must be a sympy expression; got a str\. Parse it"):
        laplace_expansion("x**2", x, order=1)
    with pytest.raises(InputError, match=r"^`action` must be a sympy expression; got list\.$"):
        laplace_expansion([x], x, order=1)
    with pytest.raises(InputError, match=r"^`variables` must name free symbols of the action \(\['x'\]\); got 'y'\.$"):
        laplace_expansion(x**2, "y", order=1)
    with pytest.raises(InputError, match=r"^`variables` must not repeat a symbol; got \[x, x\]\.$"):
        laplace_expansion(x**2, [x, x], order=1)
    with pytest.raises(InputError, match=r"^`point` must have one coordinate per variable \(1\); got 2\.$"):
        laplace_expansion(x**2, x, order=1, point=(0, 1))
    with pytest.raises(InputError, match=r"^`point` must give a value for every variable; got none for \['x'\]\.$"):
        laplace_expansion(x**2, x, order=1, point={"y": 0})


def test_json_round_trip_with_symbols_and_mean_needs_a_rebuild():
    from pft.symbolic import LaplaceExpansion

    x, a, b = sympy.symbols("x a b", real=True)
    e = laplace_expansion(x**2 / 2 + a * x**3 / 6 + b * x**4 / 24, x, order=2)
    back = LaplaceExpansion.from_json(e.to_json())
    assert back.to_dict() == e.to_dict()
    assert sympy.expand(back.coefficients[0] - (5 * a**2 / 24 - b / 8)) == 0
    assert [t.plan for t in back.terms[2]] == [t.plan for t in e.terms[2]]
    assert [t.diagram for t in back.terms[2]] == [t.diagram for t in e.terms[2]]
    with pytest.raises(InputError, match="rebuild"):
        back.mean(1)

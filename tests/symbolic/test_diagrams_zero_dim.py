"""zero_dimensional_series against values that do not come from pft's diagram code."""

import math
from fractions import Fraction

import pytest
import sympy
from scipy import integrate

from pft.errors import InputError
from pft.symbolic import zero_dimensional_series

g, g3, g4 = sympy.symbols("g g3 g4")


def test_phi4_log_z_low_orders():
    # log Z of the 0-dim φ⁴ theory: -g/8 + g²/12 - 11 g³/96 (docs/math.md §2; the
    # g³ term also by hand: Wick counts 105·(1/24)³/6 ... minus cross terms).
    s = zero_dimensional_series({4: g}, 3)
    assert sympy.expand(s - (-g / 8 + g**2 / 12 - sympy.Rational(11, 96) * g**3)) == 0


def test_gaussian_limit_and_two_point_phi4():
    # ⟨x²⟩ = 1 - g/2 + O(g²): first-order perturbation theory, (⟨x⁶⟩ - ⟨x²⟩⟨x⁴⟩)/24 = (15-3)/24.
    s = zero_dimensional_series({4: g}, 1, n_external=2)
    assert sympy.expand(s - (1 - g / 2)) == 0
    # κ₄ = -g at first order: ⟨x⁴⟩ - 3⟨x²⟩² = (3 - 4g) - 3(1 - g).
    s4 = zero_dimensional_series({4: g}, 1, n_external=4)
    assert sympy.expand(s4 + g) == 0


def test_disconnected_is_plain_expansion():
    # Z/Z₀ = Σ_m (-g/24)^m (4m-1)!!/m!: direct Taylor expansion of exp.
    s = zero_dimensional_series({4: g}, 3, connected=False)
    want = sum(Fraction((-1) ** m * math.prod(range(4 * m - 1, 0, -2)), 24**m * math.factorial(m)) * g**m for m in range(4))
    assert sympy.expand(s - want) == 0


def _quad(fun):
    val, err = integrate.quad(fun, -math.inf, math.inf, epsabs=1e-14, epsrel=1e-13)
    return val / math.sqrt(2 * math.pi)


@pytest.mark.parametrize("n_external", [0, 1, 2, 3, 4])
def test_series_matches_quadrature_mixed_theory(n_external):
    # Truth: numerical quadrature of the convergent φ³+φ⁴ integral at small couplings. The series
    # is asymptotic: the order-5 truncation must beat 1e-9 and be >50x closer than order 3.
    a, b = 0.005, 0.006
    approx = [
        float(zero_dimensional_series({3: g3, 4: g4}, k, n_external=n_external).subs({g3: a, g4: b}))
        for k in (3, 5)
    ]

    def w(x):
        return math.exp(-x * x / 2 - a * x**3 / 6 - b * x**4 / 24)

    z = _quad(w)
    mom = [_quad(lambda x, j=j: x**j * w(x)) / z for j in range(n_external + 1)]
    if n_external == 0:
        truth = math.log(z)
    else:  # cumulants from moments
        kap = [0.0]
        for r in range(1, n_external + 1):
            kap.append(mom[r] - sum(math.comb(r - 1, i - 1) * kap[i] * mom[r - i] for i in range(1, r)))
        truth = kap[n_external]
    assert abs(approx[1] - truth) < 1e-9
    assert abs(approx[1] - truth) < 2e-2 * abs(approx[0] - truth)


def test_default_symbols_and_bad_input():
    s = zero_dimensional_series([3], 2, n_external=2)
    assert s.free_symbols == {sympy.Symbol("g3")}
    with pytest.raises(InputError, match="`order`"):
        zero_dimensional_series([4], -1)
    with pytest.raises(InputError, match="`couplings`"):
        zero_dimensional_series({0: g}, 2)
    with pytest.raises(InputError, match=r"^`couplings` must name each degree once; got degrees \[3, 3\]\.$"):
        zero_dimensional_series([3, 3], 2)
    with pytest.raises(InputError, match="`n_external`"):
        zero_dimensional_series([4], 2, n_external=1.5)

"""Symbolic Edgeworth series: moments of the density, known closed forms, Cornish–Fisher."""

from fractions import Fraction

import pytest
import sympy

from pft.errors import InputError
from pft.symbolic import cumulants_to_moments, edgeworth


def _gaussian_expectation(poly, variables):
    """E[poly(x)] under a standard normal in each variable: x^j -> (j-1)!! (0 for odd j)."""
    p = sympy.Poly(sympy.expand(poly), *variables)
    total = sympy.Integer(0)
    for monom, coeff in p.terms():
        term = coeff
        for j in monom:
            term *= 0 if j % 2 else sympy.factorial2(j - 1)
        total += term
    return sympy.expand(total)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_density_reproduces_the_moments_of_its_cumulants(order):
    # ∫ x^r f(x) dx must equal the r-th moment of (0, 1, κ_3, …, κ_{order+2}) for r <= order+2:
    # the Hermite terms of degree > r are orthogonal to x^r. Moments from set partitions
    # (cumulants_to_moments), integrals by Gaussian moments: independent of the series code.
    e = edgeworth(order)
    (x,) = e.variables
    poly = 1 + sum(e.corrections)
    kappas = [sympy.Integer(0), sympy.Integer(1)] + [e.cumulants[r] for r in range(3, order + 3)]
    moments = cumulants_to_moments(kappas)
    for r in range(order + 3):
        got = _gaussian_expectation(x**r * poly, [x])
        want = 1 if r == 0 else moments[r - 1]
        assert sympy.expand(got - want) == 0, (order, r)


def test_known_second_order_form():
    # docs/math.md §3: f ≈ φ [1 + κ3/6 He3 + κ4/24 He4 + κ3²/72 He6]
    e = edgeworth(2)
    (x,) = e.variables
    k3, k4 = e.cumulants[3], e.cumulants[4]
    he3, he4, he6 = x**3 - 3 * x, x**4 - 6 * x**2 + 3, x**6 - 15 * x**4 + 45 * x**2 - 15
    want = k3 / 6 * he3 + k4 / 24 * he4 + k3**2 / 72 * he6
    assert sympy.expand(sum(e.corrections) - want) == 0
    assert [(t.coefficient, t.ranks) for t in e.terms] == [
        (Fraction(1, 6), (3,)),
        (Fraction(1, 24), (4,)),
        (Fraction(1, 72), (3, 3)),
    ]


def test_cornish_fisher_known_terms():
    # Standard third-order Cornish–Fisher expansion (Cornish & Fisher 1938; e.g. Hill & Davis 1968).
    e = edgeworth(3)
    z = sympy.Symbol("z", real=True)
    k3, k4, k5 = (e.cumulants[r] for r in (3, 4, 5))
    want = (
        z
        + k3 / 6 * (z**2 - 1)
        + k4 / 24 * (z**3 - 3 * z)
        - k3**2 / 36 * (2 * z**3 - 5 * z)
        + k5 / 120 * (z**4 - 6 * z**2 + 3)
        - k3 * k4 / 24 * (z**4 - 5 * z**2 + 2)
        + k3**3 / 324 * (12 * z**4 - 53 * z**2 + 17)
    )
    assert sympy.expand(e.quantile - want) == 0


def test_multivariate_independent_components_factorise():
    # dim=2 with only pure cumulants κ_{0…0}, κ_{1…1}: the series is the product of the two
    # univariate series truncated at total order.
    order = 3
    e2 = edgeworth(order, dim=2)
    e1 = edgeworth(order)
    x0, x1 = e2.variables
    (x,) = e1.variables
    pure = {}
    for idx, sym in e2.cumulants.items():
        pure[sym] = 0 if len(set(idx)) > 1 else sympy.Symbol(f"{'ab'[idx[0]]}{len(idx)}")
    multi = sympy.expand((1 + sum(e2.corrections)).subs(pure))
    def uni(var, name):
        subs = {e1.cumulants[r]: sympy.Symbol(f"{name}{r}") for r in e1.cumulants}
        return [sympy.Integer(1)] + [c.subs(subs).subs(x, var) for c in e1.corrections]
    a, b = uni(x0, "a"), uni(x1, "b")
    product = sum(a[i] * b[j] for i in range(order + 1) for j in range(order + 1) if i + j <= order)
    assert sympy.expand(multi - product) == 0


def test_result_is_readable_and_serialisable():
    import json

    e = edgeworth(2)
    assert "κ3 κ3" in str(e) and "1/72" in str(e)
    d = json.loads(e.to_json())
    assert d["order"] == 2 and d["terms"][2]["coefficient"] == "1/72"


def test_bad_arguments():
    with pytest.raises(InputError, match="`order`"):
        edgeworth(-1)
    with pytest.raises(InputError, match="`dim`"):
        edgeworth(2, dim=0)

"""Every symbolic result class comes back from its JSON: from_json(to_json()) has the same
to_dict(), and the values that matter are equal as objects (exact rationals stay exact)."""

import sympy

from pft.symbolic import (
    ContractionPlan,
    CorrelatorExpansion,
    Diagram,
    DiagramTerm,
    EdgeworthExpansion,
    LaplaceExpansion,
    contraction_plan,
    edgeworth,
    laplace_expansion,
)


def test_contraction_plan_roundtrip_is_equal():
    for edges in ([(0, 1)] * 3, [(0, 0), (0, 0)], [(0, 0), (0, 1), (1, 1)]):
        plan = contraction_plan(Diagram.from_edges(edges))
        back = ContractionPlan.from_json(plan.to_json())
        assert back == plan and back.to_dict() == plan.to_dict()


def test_exact_laplace_and_moments_roundtrip():
    x = sympy.Symbol("x", positive=True)
    e = laplace_expansion(x - sympy.log(x), x, order=3)  # Stirling: 1/12, 0, -1/360
    back = LaplaceExpansion.from_json(e.to_json())
    assert back.to_dict() == e.to_dict()
    assert back.coefficients == (sympy.Rational(1, 12), 0, sympy.Rational(-1, 360))
    for moments in (e.mean(2), e.covariance(2)):
        again = CorrelatorExpansion.from_json(moments.to_json())
        assert again.to_dict() == moments.to_dict()
        assert [sympy.ImmutableMatrix(c) for c in again.corrections] == [sympy.ImmutableMatrix(c) for c in moments.corrections]


def test_symbolic_couplings_survive_the_roundtrip():
    x, y, a = sympy.symbols("x y a", real=True)
    e = laplace_expansion(x**2 / 2 + y**2 / 2 + a * x * y**2, [x, y], order=1, point=[0, 0])
    back = LaplaceExpansion.from_json(e.to_json())
    assert back.to_dict() == e.to_dict()
    assert sympy.simplify(back.coefficients[0] - e.coefficients[0]) == 0
    cov = e.covariance(1)
    assert CorrelatorExpansion.from_json(cov.to_json()).to_dict() == cov.to_dict()


def test_numeric_laplace_and_moments_roundtrip():
    from pft.numeric import laplace

    e = laplace(lambda v: (v**2).sum() / 2 + v[0] ** 3 / 6 + v[0] * v[1] ** 2 / 3, [0.0, 0.0], order=2)
    back = LaplaceExpansion.from_json(e.to_json())
    assert back.to_dict() == e.to_dict() and not back.exact
    assert back.coefficients == e.coefficients
    m = e.mean(2)
    again = CorrelatorExpansion.from_json(m.to_json())
    assert again.to_dict() == m.to_dict()
    assert all((a == b).all() for a, b in zip(again.corrections, m.corrections))


def test_diagram_term_roundtrip():
    d = Diagram.from_edges([(0, 1)] * 3)
    t = DiagramTerm(d, contraction_plan(d), sympy.Rational(5, 24))
    assert DiagramTerm.from_dict(t.to_dict()) == t


def test_edgeworth_roundtrip_univariate_and_tensor():
    for order, dim in ((3, 1), (2, 2)):
        e = edgeworth(order, dim=dim)
        back = EdgeworthExpansion.from_json(e.to_json())
        assert back.to_dict() == e.to_dict()
        assert back.density == e.density and back.corrections == e.corrections
        assert back.cumulants == e.cumulants and back.terms == e.terms and back.quantile == e.quantile

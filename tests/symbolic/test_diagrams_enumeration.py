"""Enumerated diagrams against the exact zero-dimensional series (Wick's theorem) and OEIS.

Truth: `zero_dimensional_series` expands the integral directly in Gaussian moments and shares no
code with the enumeration; the identity coefficient(Π g_k^{m_k}) = Σ Π(-1)^{m_k}/|Aut| over the
matching diagrams is docs/math.md §2.
"""

import math
from collections import defaultdict
from fractions import Fraction

import pytest
import sympy

from pft.errors import InputError
from pft.symbolic import Diagram, correlator_diagrams, vacuum_diagrams, zero_dimensional_series


def _coefficients(couplings, order, **kw):
    ks = sorted(couplings)
    syms = [sympy.Symbol(f"g{k}") for k in ks]
    expr = zero_dimensional_series(dict(zip(ks, syms)), order, **kw)
    poly = sympy.Poly(expr, *syms)
    out = {}
    for exps, c in poly.as_dict().items():
        out[tuple(sorted((k, e) for k, e in zip(ks, exps) if e))] = Fraction(int(c.p), int(c.q))
    return out


def _diagram_sums(diagrams):
    out = defaultdict(Fraction)
    for d in diagrams:
        counts = d.vertex_counts
        out[tuple(sorted(counts.items()))] += (-1) ** sum(counts.values()) * d.symmetry_factor
    return out


# OEIS A085549: connected 4-regular multigraphs (loops allowed) on n nodes, n = 1..6.
A085549 = [1, 2, 4, 10, 28, 97]
# OEIS A005967: connected 3-regular multigraphs (loops allowed) on 2n nodes, n = 1..5.
A005967 = [2, 5, 17, 71, 388]


def test_phi4_vacuum_one_to_six_vertices():
    coeff = _coefficients([4], 6)
    for v in range(1, 7):
        ds = vacuum_diagrams((4,), vertices={4: v})
        assert len(ds) == A085549[v - 1]
        assert _diagram_sums(ds)[((4, v),)] == coeff[((4, v),)]


@pytest.mark.parametrize("v", [2, 4, 6, 8, 10])
def test_phi3_vacuum_two_to_ten_vertices(v):
    coeff = _coefficients([3], v)
    ds = vacuum_diagrams((3,), vertices={3: v})
    assert len(ds) == A005967[v // 2 - 1]
    assert _diagram_sums(ds)[((3, v),)] == coeff[((3, v),)]


def test_phi3_odd_vertex_numbers_are_empty():
    assert vacuum_diagrams((3,), vertices={3: 3}) == []


def test_mixed_vacuum_through_three_loops():
    # L loops need Σ m_k (k - 2) = 2L - 2; three loops need at most 4 vertices.
    coeff = _coefficients([3, 4], 4)
    seen = set()
    for L in (1, 2, 3):
        sums = _diagram_sums(vacuum_diagrams((3, 4), loops=L))
        wanted = {m: c for m, c in coeff.items() if sum(e * (k - 2) for k, e in m) == 2 * L - 2}
        assert sums == wanted, L
        seen |= set(wanted)
    # every monomial of the series up to 3 loops was met
    assert seen == {m for m in coeff if sum(e * (k - 2) for k, e in m) <= 4}


@pytest.mark.parametrize("n", [2, 4])
def test_phi4_connected_correlators_through_four_vertices(n):
    coeff = _coefficients([4], 4, n_external=n)
    for v in range(0, 5):
        sums = _diagram_sums(correlator_diagrams(n, (4,), vertices={4: v}))
        key = ((4, v),) if v else ()
        assert sums.get(key, 0) == coeff.get(key, 0), v


def test_mixed_correlators_and_odd_points():
    for n in (1, 2, 3):
        coeff = _coefficients([3, 4], 3, n_external=n)
        got = defaultdict(Fraction)
        for m3 in range(4):
            for m4 in range(4 - m3):
                got.update(_diagram_sums(correlator_diagrams(n, (3, 4), vertices={3: m3, 4: m4})))
        got = {k: c for k, c in got.items() if c}
        assert got == coeff, n


def test_self_energy_by_legendre_transform():
    # Γ⁽²⁾ = 1/W⁽²⁾ (Legendre transform), and Γ⁽²⁾ = G₀⁻¹ - Σ with G₀ = 1: Σ = 1 - 1/⟨x²⟩_c.
    # Σ is the sum of the 1PI two-point diagrams (legs amputated; they carry weight 1 here).
    g = sympy.Symbol("g4")
    w2 = zero_dimensional_series({4: g}, 4, n_external=2)
    sigma = sympy.Poly(sympy.series(1 - 1 / w2, g, 0, 5).removeO(), g)
    for v in range(0, 5):
        ds = correlator_diagrams(2, (4,), vertices={4: v}, one_pi=True)
        total = sum(((-1) ** v * d.symmetry_factor for d in ds), Fraction(0))
        c = sigma.coeff_monomial(g**v)
        assert total == Fraction(int(c.p), int(c.q)), v


@pytest.mark.parametrize("valences", [(4,), (3, 4)])
def test_amputated_four_point(valences):
    # For n >= 3 legs, ⟨x⁴⟩_c = ⟨x²⟩_c⁴ × (amputated connected 4-point sum): each leg's full
    # propagator factors out.
    ks = sorted(valences)
    syms = {k: sympy.Symbol(f"g{k}") for k in ks}
    order = 3
    w2 = zero_dimensional_series(syms, order, n_external=2)
    w4 = zero_dimensional_series(syms, order, n_external=4)
    amp = 0
    for ms in _vertex_sets(ks, order):
        for d in correlator_diagrams(4, valences, vertices=ms, amputated=True):
            term = sympy.Rational(d.symmetry_factor.numerator, d.symmetry_factor.denominator)
            for k, m in d.vertex_counts.items():
                term *= (-syms[k]) ** m
            amp += term
    lhs = _truncate(sympy.expand(w2**4 * amp), syms, order)
    assert sympy.expand(lhs - w4) == 0


def _vertex_sets(ks, order):
    from itertools import product

    for counts in product(range(order + 1), repeat=len(ks)):
        if sum(counts) <= order:
            yield dict(zip(ks, counts))


def _truncate(expr, syms, order):
    poly = sympy.Poly(expr, *syms.values())
    return sum(
        (c * sympy.prod([s**e for s, e in zip(syms.values(), exps)]) for exps, c in poly.as_dict().items() if sum(exps) <= order),
        sympy.Integer(0),
    )


def test_all_diagrams_give_z_and_full_moments():
    # connected=False: every diagram, vacuum bubbles included, sums to Z/Z0 (n = 0) and to
    # E0[x^n exp(-V)] (n = 2); the empty diagram is the 1 of Z.
    coeff = _coefficients([3, 4], 3, connected=False)
    got = defaultdict(Fraction)
    for m3 in range(4):
        for m4 in range(4 - m3):
            got.update(_diagram_sums(vacuum_diagrams((3, 4), vertices={3: m3, 4: m4}, connected=False)))
    assert {k: c for k, c in got.items() if c} == coeff
    coeff2 = _coefficients([4], 3, n_external=2, connected=False)
    for v in range(4):
        key = ((4, v),) if v else ()
        s = _diagram_sums(correlator_diagrams(2, (4,), vertices={4: v}, connected=False))
        assert s.get(key, 0) == coeff2[key]


def test_loops_and_vertices_agree_and_order_is_deterministic():
    by_loops = vacuum_diagrams((3, 4), loops=3)
    by_vertices = []
    for ms in ({3: 4}, {3: 2, 4: 1}, {4: 2}):
        by_vertices += vacuum_diagrams((3, 4), vertices=ms)
    assert sorted(d.canonical_key for d in by_loops) == sorted(d.canonical_key for d in by_vertices)
    assert [d.canonical_key for d in by_loops] == [d.canonical_key for d in vacuum_diagrams((4, 3), loops=3)]
    keys = [(d.n_vertices, d.valences, d.canonical_key) for d in by_loops]
    assert keys == sorted(keys)
    assert all(d.n_loops == 3 for d in by_loops)


def test_enumerated_matrices_are_the_canonical_form():
    # The enumerator hands Diagram its matrices pre-canonicalised; rebuilding each diagram from
    # a scrambled edge list must land on the same key and automorphism count.
    import random

    rng = random.Random(7)
    ds = vacuum_diagrams((3,), vertices={3: 6}) + correlator_diagrams(4, (3, 4), loops=1)
    for d in ds:
        nodes = list(d.graph.nodes)
        names = {v: f"n{x}" for v, x in zip(nodes, rng.sample(range(100), len(nodes)))}
        edges = [(names[u], names[v]) for u, v in d.edges]
        rng.shuffle(edges)
        ext = [names[d.n_vertices + i] for i in range(d.n_external)]
        e = Diagram.from_edges(edges, external=ext)
        assert e.canonical_key == d.canonical_key and e.automorphisms == d.automorphisms


def test_one_pi_vacuum():
    # φ³ at two vertices: the theta (1PI, |Aut| = 12) and the dumbbell (a bridge, |Aut| = 8).
    ds = vacuum_diagrams((3,), vertices={3: 2}, one_pi=True)
    assert [d.automorphisms for d in ds] == [12]


def test_bad_input():
    with pytest.raises(InputError, match="exactly one of `loops`"):
        vacuum_diagrams((4,))
    with pytest.raises(InputError, match="exactly one of `loops`"):
        vacuum_diagrams((4,), loops=2, vertices={4: 1})
    with pytest.raises(InputError, match="valence 3"):
        vacuum_diagrams((4,), vertices={3: 2})
    with pytest.raises(InputError, match="`loops` needs every valence >= 3"):
        vacuum_diagrams((2, 4), loops=2)
    with pytest.raises(InputError, match="`valences`"):
        vacuum_diagrams((0,), vertices={0: 1})
    with pytest.raises(InputError, match="`n_external`"):
        correlator_diagrams(-1, (4,), loops=1)
    with pytest.raises(InputError, match="`loops`"):
        vacuum_diagrams((4,), loops=-1)


@pytest.mark.parametrize("valences", [(3,), (4,), (3, 4)])
def test_loop_selection_matches_vertex_selection(valences):
    # Each diagram once: loops=L is the union over the vertex sets with Σ(k - 2) = 2L - 2 + n.
    from itertools import product

    for n, L in ((0, 3), (2, 0), (2, 2), (4, 1)):
        by_loops = correlator_diagrams(n, valences, loops=L)
        union = []
        for counts in product(range(6), repeat=len(valences)):
            ms = dict(zip(valences, counts))
            if sum(m * (k - 2) for k, m in ms.items()) == 2 * L - 2 + n or (not any(counts) and n == 2 and L == 0):
                union += correlator_diagrams(n, valences, vertices=ms)
        assert len(by_loops) == len(set(by_loops)) == len(union)
        assert set(by_loops) == set(union)


def test_stirling_series_from_vacuum_diagrams():
    # ∫ exp(-n(x - log x)) dx = Γ(n+1)/n^(n+1); Stirling's series gives log Z = -n + ½log(2π/n)
    # + 1/(12n) + 0/n² - 1/(360 n³) + ... (docs/math.md §1). With λ_k = ∂ᵏS(1) = (-1)^k (k-1)!, c_m is
    # Σ Π(-λ_k)/|Aut| over connected vacuum diagrams with L = m + 1 loops and degrees <= 2m + 2.
    want = {1: Fraction(1, 12), 2: Fraction(0), 3: Fraction(-1, 360)}
    for m, c in want.items():
        total = Fraction(0)
        for d in vacuum_diagrams(tuple(range(3, 2 * m + 3)), loops=m + 1):
            term = d.symmetry_factor
            for k, count in d.vertex_counts.items():
                term *= (-((-1) ** k) * math.factorial(k - 1)) ** count
            total += term
        assert total == c, m


@pytest.mark.parametrize("n", [0, 1, 2])
def test_low_valences_by_vertex_content(n):
    # Sources (k = 1) and mass insertions (k = 2) are diagrams too, reachable with `vertices=`.
    from itertools import product

    coeff = _coefficients([1, 2, 3], 4, n_external=n)
    got = defaultdict(Fraction)
    for counts in product(range(5), repeat=3):
        if sum(counts) <= 4:
            ms = dict(zip((1, 2, 3), counts))
            got.update(_diagram_sums(correlator_diagrams(n, (1, 2, 3), vertices=ms)))
    assert {k: c for k, c in got.items() if c} == coeff

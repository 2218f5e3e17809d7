"""Diagram's structural properties on hand-checked examples."""

from fractions import Fraction

import networkx as nx
import pytest

from pft.errors import InputError
from pft.symbolic import Diagram


def test_figure_eight_and_theta():
    # Figure eight: one φ⁴ vertex, two self-loops: 2²·2! = 8 (docs/math.md §2).
    d = Diagram.from_edges([(0, 0), (0, 0)])
    assert (d.valences, d.n_loops, d.automorphisms, d.symmetry_factor) == ((4,), 2, 8, Fraction(1, 8))
    # Theta: two φ³ vertices, three parallel lines: 2 (swap) · 3! = 12 (docs/math.md §1: 1/12).
    t = Diagram.from_edges([(0, 1)] * 3)
    assert (t.n_loops, t.automorphisms, t.is_one_particle_irreducible) == (2, 12, True)
    # Dumbbell: 2 (swap) · 2 · 2 (loop flips) = 8 (docs/math.md §1: 1/8); its middle line is a bridge.
    b = Diagram.from_edges([(0, 0), (0, 1), (1, 1)])
    assert (b.automorphisms, b.is_one_particle_irreducible, b.is_connected) == (8, False, True)


def test_graph_attributes_for_downstream_code():
    d = Diagram.from_edges([("a", "a"), ("a", "x"), ("a", "y")], external=["y", "x"])
    g = d.graph
    assert isinstance(g, nx.MultiGraph) and nx.is_frozen(g)
    assert g.nodes[0] == {"valence": 4, "external": False}
    assert g.nodes[1] == {"valence": 1, "external": True, "label": 0}
    assert g.nodes[2]["label"] == 1
    assert sorted(g.edges()) == [(0, 0), (0, 1), (0, 2)]
    assert d.n_external == 2 and d.n_vertices == 1 and d.n_loops == 1


def test_external_labels_are_fixed():
    # Legs 0,1 on one vertex and 2,3 on the other is not isomorphic to legs 0,2 / 1,3.
    a = Diagram.from_edges([(0, 1), (0, 1), ("x0", 0), ("x1", 0), ("x2", 1), ("x3", 1)], external=["x0", "x1", "x2", "x3"])
    b = Diagram.from_edges([(0, 1), (0, 1), ("x0", 0), ("x2", 0), ("x1", 1), ("x3", 1)], external=["x0", "x1", "x2", "x3"])
    assert a != b
    assert a.automorphisms == 2  # only the two parallel lines swap


def test_disconnected_and_loop_count():
    d = Diagram.from_edges([(0, 0), (0, 0), (1, 2), (1, 2), (1, 2)])
    assert not d.is_connected
    assert d.n_loops == 2 + 2
    assert d.automorphisms == 8 * 12


def test_amputation_flags():
    # Tadpole on leg 0 of a φ⁴ four-point vertex: leg 0 carries a correction.
    d = Diagram.from_edges(
        [(0, "a"), (0, "b"), (0, "c"), (0, 1), (1, 1), (1, "d")], external=["d", "a", "b", "c"]
    )
    assert d.is_connected and not d.is_amputated and not d.is_one_particle_irreducible
    bare = Diagram.from_edges([("a", "b")], external=["a", "b"])
    assert not bare.is_amputated and not bare.is_one_particle_irreducible and bare.n_loops == 0


def test_bad_graphs():
    with pytest.raises(InputError, match="degree 1"):
        Diagram.from_edges([(0, "x"), (0, "x")], external=["x"])
    g = nx.MultiGraph()
    g.add_edge(0, 1)
    g.nodes[0]["valence"] = 3
    with pytest.raises(InputError, match="`valence` 3 but degree 1"):
        Diagram(g)
    with pytest.raises(InputError, match="`graph`"):
        Diagram(nx.DiGraph([(0, 1)]))
    with pytest.raises(InputError, match="`external`"):
        Diagram.from_edges([(0, 0)], external=["x"])

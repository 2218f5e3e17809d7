"""Property tests: the canonical key and |Aut| do not depend on how a diagram is written down."""

import random

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from pft.symbolic import Diagram


@st.composite
def written_diagrams(draw):
    """A random Wick pairing of the half-edges of a random vertex set, plus random legs."""
    vals = draw(st.lists(st.integers(1, 5), min_size=1, max_size=5))
    n_ext = draw(st.integers(0, 3))
    if (sum(vals) + n_ext) % 2:
        n_ext += 1
    half = [v for v, k in enumerate(vals) for _ in range(k)] + [("leg", i) for i in range(n_ext)]
    order = draw(st.permutations(range(len(half))))
    edges = [(half[order[i]], half[order[i + 1]]) for i in range(0, len(half), 2)]
    return vals, n_ext, edges


def _rewrite(vals, n_ext, edges, seed):
    """Same diagram written differently: vertices permuted among those of equal valence and
    renamed, the half-edges of every vertex permuted, edge order and orientation shuffled."""
    rng = random.Random(seed)
    by_valence = {}
    for v, k in enumerate(vals):
        by_valence.setdefault(k, []).append(v)
    image = {}
    for group in by_valence.values():
        shuffled = group[:]
        rng.shuffle(shuffled)
        image.update(zip(group, shuffled))
    names = rng.sample(range(1000), len(vals))
    rename = {v: f"v{names[image[v]]}" for v in range(len(vals))}
    rename.update({("leg", i): f"e{i}" for i in range(n_ext)})
    # half-edges: (vertex, slot); a pairing of half-edges becomes a pairing of permuted slots
    slots = {v: list(range(k)) for v, k in enumerate(vals)}
    for v in slots:
        rng.shuffle(slots[v])
    used = {v: 0 for v in range(len(vals))}
    half_pairs = []
    for a, b in edges:
        ends = []
        for x in (a, b):
            if isinstance(x, tuple):
                ends.append((x, 0))
            else:
                ends.append((x, slots[x][used[x]]))
                used[x] += 1
        half_pairs.append(tuple(ends))
    out = [(rename[x], rename[y]) if rng.random() < 0.5 else (rename[y], rename[x]) for (x, _), (y, _) in half_pairs]
    rng.shuffle(out)
    return out, [f"e{i}" for i in range(n_ext)]


@settings(max_examples=60, deadline=None)
@given(written_diagrams(), st.integers(0, 2**32 - 1))
def test_key_and_automorphisms_are_invariant(diagram, seed):
    vals, n_ext, edges = diagram
    ext = [("leg", i) for i in range(n_ext)]
    d = Diagram.from_edges(edges, external=ext)
    e_edges, e_ext = _rewrite(vals, n_ext, edges, seed)
    e = Diagram.from_edges(e_edges, external=e_ext)
    assert d.canonical_key == e.canonical_key
    assert d.automorphisms == e.automorphisms
    assert hash(d) == hash(e) and d == e
    assert Diagram.from_dict(d.to_dict()) == d


def _nx_view(d):
    g = nx.MultiGraph()
    for v, data in d.graph.nodes(data=True):
        g.add_node(v, kind=(data["external"], data.get("label"), data["valence"]))
    g.add_edges_from(d.graph.edges())
    return g


@settings(max_examples=60, deadline=None)
@given(written_diagrams(), written_diagrams())
def test_key_equal_iff_isomorphic(a, b):
    da = Diagram.from_edges(a[2], external=[("leg", i) for i in range(a[1])])
    db = Diagram.from_edges(b[2], external=[("leg", i) for i in range(b[1])])
    iso = nx.is_isomorphic(_nx_view(da), _nx_view(db), node_match=lambda x, y: x["kind"] == y["kind"])
    assert (da.canonical_key == db.canonical_key) == iso


@settings(max_examples=40, deadline=None)
@given(written_diagrams())
def test_vertex_automorphisms_match_networkx(diagram):
    # |Aut| = |Aut_V| · Π m! · Π 2^s s!; count Aut_V with networkx's matcher (independent code).
    from math import factorial

    vals, n_ext, edges = diagram
    d = Diagram.from_edges(edges, external=[("leg", i) for i in range(n_ext)])
    g = _nx_view(d)
    matcher = nx.algorithms.isomorphism.MultiGraphMatcher(g, g, node_match=lambda x, y: x["kind"] == y["kind"])
    aut_v = sum(1 for _ in matcher.isomorphisms_iter())
    edge_part = 1
    for u, v in set(d.edges):
        m = d.edges.count((u, v))
        edge_part *= (2**m * factorial(m)) if u == v else factorial(m)
    assert d.automorphisms == aut_v * edge_part

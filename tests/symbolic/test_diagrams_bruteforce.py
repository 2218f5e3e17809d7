"""The slow, obviously correct twin: every Wick pairing of the half-edges, grouped by
isomorphism with networkx's own matcher (not pft's canonical form).

Orbit-stabiliser gives the automorphism order independently: the relabellings of half-edges
(k! per vertex of valence k, m! per bundle of m equal vertices; legs are fixed) act on the
pairings, a class's orbit is the set of pairings that draw it, so |Aut| = |group| / orbit size.
"""

from collections import Counter
from math import factorial

import networkx as nx
import pytest

from pft.symbolic import correlator_diagrams, vacuum_diagrams


def _pairings(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for i in range(len(rest)):
        for tail in _pairings(rest[:i] + rest[i + 1 :]):
            yield [(first, rest[i])] + tail


def _brute_force(vertex_counts, n_external):
    vals = sorted((k for k, m in vertex_counts.items() for _ in range(m)), reverse=True)
    V = len(vals)
    owner = [v for v, k in enumerate(vals) for _ in range(k)] + list(range(V, V + n_external))
    per_graph = Counter()
    for p in _pairings(list(range(len(owner)))):
        edges = tuple(sorted(tuple(sorted((owner[a], owner[b]))) for a, b in p))
        per_graph[edges] += 1
    group = 1
    for k, m in vertex_counts.items():
        group *= factorial(k) ** m * factorial(m)
    classes = []  # [graph, orbit size]
    for edges, count in per_graph.items():
        g = nx.MultiGraph()
        for v, k in enumerate(vals):
            g.add_node(v, kind=("v", k))
        for i in range(n_external):
            g.add_node(V + i, kind=("leg", i))
        g.add_edges_from(edges)
        for cls in classes:
            if nx.is_isomorphic(cls[0], g, node_match=lambda a, b: a["kind"] == b["kind"]):
                cls[1] += count
                break
        else:
            classes.append([g, count])
    return [(g, group // orbit, group % orbit) for g, orbit in classes]


def _as_kind_graph(d):
    g = nx.MultiGraph()
    for v, data in d.graph.nodes(data=True):
        g.add_node(v, kind=("leg", data["label"]) if data["external"] else ("v", data["valence"]))
    g.add_edges_from(d.graph.edges())
    return g


def _is_one_pi(g):
    inner = [v for v, kind in g.nodes(data="kind") if kind[0] == "v"]
    if not inner or any(g.nodes[u]["kind"][0] == "leg" and g.nodes[v]["kind"][0] == "leg" for u, v in g.edges()):
        return False
    base = nx.number_connected_components(g)
    for u, v, key in list(g.edges(keys=True)):
        if u != v and u in inner and v in inner:
            h = g.copy()
            h.remove_edge(u, v, key)
            if nx.number_connected_components(h) > base:
                return False
    return True


CASES = [
    ({4: 1}, 0), ({4: 2}, 0), ({4: 3}, 0), ({3: 2}, 0), ({3: 4}, 0), ({3: 2, 4: 1}, 0),
    ({4: 1}, 2), ({4: 2}, 2), ({3: 2}, 2), ({4: 1}, 4), ({4: 2}, 4), ({3: 2}, 3), ({3: 1, 4: 1}, 1),
    ({}, 4), ({2: 2}, 0), ({1: 2, 3: 1}, 1),
]


@pytest.mark.parametrize("vertex_counts,n_external", CASES)
def test_same_diagrams_and_automorphisms_as_wick_pairings(vertex_counts, n_external):
    brute = _brute_force(vertex_counts, n_external)
    assert all(rem == 0 for _, _, rem in brute)  # orbit sizes divide the group order
    valences = tuple(sorted(vertex_counts)) or (4,)
    for connected in (False, True):
        for one_pi in (False, True):
            want = [
                (g, aut) for g, aut, _ in brute
                if (not connected or nx.is_connected(g)) and (not one_pi or _is_one_pi(g))
            ]
            if n_external:
                got = correlator_diagrams(n_external, valences, vertices=vertex_counts, connected=connected, one_pi=one_pi)
            else:
                got = vacuum_diagrams(valences, vertices=vertex_counts, connected=connected, one_pi=one_pi)
            assert len(got) == len(want), (connected, one_pi)
            matched = set()
            for d in got:
                gd = _as_kind_graph(d)
                hits = [i for i, (g, _) in enumerate(want) if nx.is_isomorphic(g, gd, node_match=lambda a, b: a["kind"] == b["kind"])]
                assert len(hits) == 1
                assert want[hits[0]][1] == d.automorphisms
                matched.add(hits[0])
            assert len(matched) == len(want)


def test_twin_is_not_vacuous():
    # φ⁴ at two vertices by hand: 7!! = 105 pairings of 8 half-edges, group order 4!²·2! = 1152.
    # Orbits: sunset 1152/48 = 24, dumbbell with loops 1152/16 = 72, two figure-eights
    # 1152/128 = 9; 24 + 72 + 9 = 105.
    brute = _brute_force({4: 2}, 0)
    conn = sorted(aut for g, aut, _ in brute if nx.is_connected(g))
    assert conn == [16, 48]
    assert sum(1152 // aut for g, aut, _ in brute) == 105  # 7!! pairings of 8 half-edges
